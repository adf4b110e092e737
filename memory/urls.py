from django.urls import path

from memory import api

urlpatterns = [
    path("memories", api.MemoryCollectionApi.as_view(), name="memory-collection"),
    path("memories/<str:memory_id>", api.MemoryDetailApi.as_view(), name="memory-detail"),
    path("memories/<str:memory_id>/history", api.MemoryHistoryApi.as_view(), name="memory-history"),
    path("search", api.SearchApi.as_view(), name="search"),
    path("stats", api.StatsApi.as_view(), name="stats"),
]
