from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# One sign-in: the admin's login page sends to allauth's (email, password, then the TOTP code of
# users who have one), which comes back to the admin.
admin.autodiscover()
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]

admin.site.site_header = "invsync"
admin.site.site_title = "invsync"
admin.site.index_title = "Clients, flows and records"
