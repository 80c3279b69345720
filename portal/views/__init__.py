"""Portal views by audience: home (everyone), consumer (a customer's own meters and bills)."""

from portal.views.consumer import bill_detail, consumer_dashboard, consumer_download, consumer_today
from portal.views.home import home

__all__ = ["bill_detail", "consumer_dashboard", "consumer_download", "consumer_today", "home"]
