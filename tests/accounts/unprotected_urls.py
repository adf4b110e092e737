"""A URL conf with three careless endpoints, to prove that the access walk catches them."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class UndeclaredApi(APIView):
    """Forgot `required_scopes`: HasRole refuses everyone, which the walk reports."""

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class OpenApi(APIView):
    """Opened to the world without being in the walk's PUBLIC list."""

    public = True
    authentication_classes: list[type] = []
    required_scopes = {"GET": "memory:read"}

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


def careless_page(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("", include("config.urls")),
    path("careless/undeclared", UndeclaredApi.as_view(), name="careless-undeclared"),
    path("careless/open", OpenApi.as_view(), name="careless-open"),
    path("careless/page", careless_page, name="careless-page"),
]
