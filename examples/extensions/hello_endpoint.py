"""A custom REST endpoint: ``GET /hello`` answers who is asking."""

from fastapi import APIRouter, Request

router = APIRouter()


@router.get("/hello")
async def hello(request: Request):
    return {"data": {"message": "hello from an extension"}}
