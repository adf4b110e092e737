from django.urls import path

from audit import api

urlpatterns = [
    path("", api.AuditListApi.as_view(), name="audit-list"),
]
