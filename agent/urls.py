from django.urls import path

from agent import api

urlpatterns = [
    path("chat/completions", api.ChatCompletionsApi.as_view(), name="chat-completions"),
]
