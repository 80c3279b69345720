from django.contrib.auth import views as auth_views
from django.urls import path

from portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("meters/<int:meter_pk>/", views.consumer_dashboard, name="consumer_dashboard"),
    path("meters/<int:meter_pk>/today.json", views.consumer_today, name="consumer_today"),
    path("meters/<int:meter_pk>/download/", views.consumer_download, name="consumer_download"),
    path("bills/<int:bill_pk>/", views.bill_detail, name="bill_detail"),
    path("login/", auth_views.LoginView.as_view(template_name="portal/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(template_name="portal/password_change.html"),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="portal/password_change_done.html"),
        name="password_change_done",
    ),
]
