from rest_framework.negotiation import DefaultContentNegotiation


class FirstRendererAlways(DefaultContentNegotiation):
    """For views that stream their own formats (CSV, TSV, XML): JSON (errors included) whatever the
    Accept header or `?format=` say, instead of DRF answering 406 or 404 before the view runs."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
