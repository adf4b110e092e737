from django.urls import path

from ingest import api

urlpatterns = [
    path("jobs", api.JobListApi.as_view(), name="job-list"),
    path("jobs/<str:job_id>", api.JobDetailApi.as_view(), name="job-detail"),
    path("index", api.IndexApi.as_view(), name="index"),
    path("files", api.FileUploadApi.as_view(), name="files"),
    path("integrations/slack/import", api.SlackImportApi.as_view(), name="slack-import"),
    path("integrations/mbox/import", api.MboxImportApi.as_view(), name="mbox-import"),
    path("import", api.JsonImportApi.as_view(), name="json-import"),
    path("export", api.ExportApi.as_view(), name="export"),
    path("admin/import-roots", api.ImportRootCollectionApi.as_view(), name="admin-import-roots"),
    path("admin/import-roots/<str:root_id>", api.ImportRootDetailApi.as_view(), name="admin-import-root"),
]
