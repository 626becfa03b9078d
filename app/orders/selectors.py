from sharding.placement import node_for_user

from .models import Purchase, Sale


def purchases_of(user_id):
    return Purchase.objects.using(node_for_user(user_id)).filter(user_id=user_id)


def sales_of(user_id):
    return Sale.objects.using(node_for_user(user_id)).filter(user_id=user_id)
