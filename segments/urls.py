from django.urls import path

from segments import apis

urlpatterns = [
    path("segments", apis.SegmentListApi.as_view(), name="api-segments"),
    path("segments/preview", apis.SegmentPreviewApi.as_view(), name="api-segment-preview"),
    path("segments/<slug:slug>", apis.SegmentDetailApi.as_view(), name="api-segment"),
    path(
        "segments/<slug:slug>/members", apis.SegmentMembersApi.as_view(), name="api-segment-members"
    ),
    path(
        "segments/<slug:slug>/explain", apis.SegmentExplainApi.as_view(), name="api-segment-explain"
    ),
    path("profiles/segments", apis.ProfileSegmentsApi.as_view(), name="api-profile-segments"),
]
