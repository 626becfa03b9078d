"""A new password logs every other client out.

Django tells each entry of AUTH_PASSWORD_VALIDATORS when a user's password has changed (`password_changed`,
called by User.save() after set_password, and only then: not for a hash upgrade at login). Every way of changing
a password passes there (the API, the web's change and reset forms, the admin, `manage.py changepassword`), so
this entry, which judges no password, revokes the user's API tokens there. Sessions need nothing: each one
carries a hash of the password it logged in with, and Django ends those whose hash no longer matches on their
next request; the change forms keep their own session with update_session_auth_hash.
"""


class RevokeCredentialsOnPasswordChange:
    def validate(self, password, user=None):
        return None

    def get_help_text(self):
        return "A new password logs out every other device and app."

    def password_changed(self, password, user=None):
        if user is not None and user.pk is not None:
            from .services import revoke_tokens

            revoke_tokens(user)
