"""ComfyUI's unified job listing (/api/jobs): queue and history as one list of jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..http import BadRequest, json_response, json_response_offloop, query_int
from ..keys import server_of
from ..prompt_server import PromptServer
from ..queue import QueueItem

STATUSES = ("pending", "in_progress", "completed", "failed")


def _outputs_summary(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    count, preview, fallback = 0, None, None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media, items in node_outputs.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if media in ("images", "video", "audio"):
                    enriched = {**item, "nodeId": node_id, "mediaType": media}
                    if preview is None and item.get("type") == "output":
                        preview = enriched
                    elif fallback is None:
                        fallback = enriched
    return count, preview or fallback


def _prune(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if v is not None}


def _workflow_id(extra_data: Any) -> Any:
    """``extra_data.extra_pnginfo.workflow.id``, read defensively: stored entries may predate
    the checks POST /prompt makes now, and one odd entry must not break the listing."""
    pnginfo = extra_data.get("extra_pnginfo") if isinstance(extra_data, dict) else None
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return workflow.get("id") if isinstance(workflow, dict) else None


def _number(value: Any) -> float | None:
    """A timestamp or priority as a number, ``None`` when it is not a finite one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _queue_job(item: QueueItem, status: str) -> dict[str, Any]:
    return _prune(
        {
            "id": item.prompt_id,
            "status": status,
            "priority": item.number,
            "create_time": _number(item.extra_data.get("create_time")),
            "outputs_count": 0,
            "workflow_id": _workflow_id(item.extra_data),
        }
    )


def _history_job(prompt_id: str, entry: dict[str, Any], full: bool = False) -> dict[str, Any]:
    number, _, prompt, extra_data, _ = entry["prompt"]
    extra_data = extra_data if isinstance(extra_data, dict) else {}
    status_info = entry.get("status") or {}
    failed = status_info.get("status_str") == "error"
    start = end = error = None
    for message in status_info.get("messages", []):
        if not (isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        event, data = message
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if event == "execution_error":
                error = data
    count, preview = _outputs_summary(entry.get("outputs") or {})
    job = _prune(
        {
            "id": prompt_id,
            "status": "failed" if failed else "completed",
            "priority": number,
            "create_time": _number(extra_data.get("create_time")),
            "execution_start_time": start,
            "execution_end_time": end,
            "execution_error": error,
            "outputs_count": count,
            "preview_output": preview,
            "workflow_id": _workflow_id(extra_data),
        }
    )
    if full:
        job["outputs"] = entry.get("outputs") or {}
        job["execution_status"] = status_info
        job["workflow"] = {"prompt": prompt, "extra_data": extra_data}
    return job


@dataclass(frozen=True)
class _JobQuery:
    """The query of GET /jobs, checked."""

    wanted: set[str]
    sort_by: str
    descending: bool
    limit: int | None
    offset: int
    workflow_id: str | None

    @classmethod
    def of(cls, request: web.Request) -> _JobQuery:
        raw_status = request.query.get("status")
        wanted = set(STATUSES)
        if raw_status:
            wanted = {s.strip() for s in raw_status.split(",") if s.strip()}
            unknown = wanted - set(STATUSES)
            if unknown:
                raise BadRequest(f"unknown status {sorted(unknown)}; use {', '.join(STATUSES)}")
        sort_by = request.query.get("sort_by", "created_at")
        if sort_by not in ("created_at", "execution_duration"):
            raise BadRequest("sort_by must be created_at or execution_duration")
        sort_order = request.query.get("sort_order", "desc")
        if sort_order not in ("asc", "desc"):
            raise BadRequest("sort_order must be asc or desc")
        limit = query_int(request, "limit")
        offset = query_int(request, "offset", 0) or 0
        return cls(wanted, sort_by, sort_order == "desc", limit, offset, request.query.get("workflow_id"))


def _sort_key(sort_by: str) -> Callable[[dict[str, Any]], float]:
    if sort_by == "execution_duration":

        def duration(j: dict[str, Any]) -> float:
            s, e = j.get("execution_start_time"), j.get("execution_end_time")
            return (e - s) if s and e else 0

        return duration

    def created(j: dict[str, Any]) -> float:
        return j.get("create_time") or 0

    return created


def _page_of_jobs(server: PromptServer, query: _JobQuery) -> dict[str, Any]:
    """The page of jobs; on a worker thread, since it reads every history entry."""
    wanted = query.wanted
    jobs: list[dict[str, Any]] = []
    if "in_progress" in wanted:
        jobs += [_queue_job(i, "in_progress") for i in server.queue.running()]
    if "pending" in wanted:
        jobs += [_queue_job(i, "pending") for i in server.queue.pending()]
    if wanted & {"completed", "failed"}:
        for prompt_id, entry in server.history.items().items():
            job = _history_job(prompt_id, entry)
            if job["status"] in wanted:
                jobs.append(job)
    if query.workflow_id:
        jobs = [j for j in jobs if j.get("workflow_id") == query.workflow_id]
    jobs.sort(key=_sort_key(query.sort_by), reverse=query.descending)
    total = len(jobs)
    page = jobs[query.offset :]
    if query.limit is not None:
        page = page[: query.limit]
    return {
        "jobs": page,
        "pagination": {
            "offset": query.offset,
            "limit": query.limit,
            "total": total,
            "has_more": query.offset + len(page) < total,
        },
    }


async def get_jobs(request: web.Request) -> web.Response:
    query = _JobQuery.of(request)
    page = await asyncio.get_running_loop().run_in_executor(None, _page_of_jobs, server_of(request), query)
    return await json_response_offloop(page)


async def get_job(request: web.Request) -> web.Response:
    server = server_of(request)
    job_id = request.match_info["job_id"]
    entry = server.history.get(job_id)
    if entry is not None:
        return await json_response_offloop(_history_job(job_id, entry, full=True))
    for item in server.queue.running():
        if item.prompt_id == job_id:
            return json_response(_queue_job(item, "in_progress"))
    for item in server.queue.pending():
        if item.prompt_id == job_id:
            return json_response(_queue_job(item, "pending"))
    return json_response({"error": {"type": "not_found", "message": f"job {job_id} not found"}}, 404)


def register(routes: web.RouteTableDef) -> None:
    """Add this module's routes to ``routes`` (``create_app`` adds each at /path and /api/path)."""
    routes.get("/jobs")(get_jobs)
    routes.get("/jobs/{job_id}")(get_job)
