from django.urls import path

from graph import api

urlpatterns = [
    path("entities", api.EntityListApi.as_view(), name="entity-list"),
    path("entities/merge", api.EntityMergeApi.as_view(), name="entity-merge"),
    path("entities/<str:entity_id>", api.EntityDetailApi.as_view(), name="entity-detail"),
    path("entities/<str:entity_id>/neighbors", api.EntityNeighborsApi.as_view(), name="entity-neighbors"),
    path("graph/path", api.GraphPathApi.as_view(), name="graph-path"),
    path("graph/export", api.GraphExportApi.as_view(), name="graph-export"),
    path("relations", api.RelationCollectionApi.as_view(), name="relation-collection"),
    path("relations/<str:relation_id>", api.RelationDetailApi.as_view(), name="relation-detail"),
]
