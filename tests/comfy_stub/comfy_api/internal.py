"""What ComfyUI 0.8's `comfy_api.internal` gives the executor: the V3 marker base classes, `first_real_override`,
and the per-run class clone (shallow copy, then locked against attribute writes)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable


class _ComfyNodeInternal:
    """Marker base of every V3 node class; execution.py tells V3 from V1 nodes with issubclass on it."""

    @classmethod
    def GET_NODE_INFO_V1(cls):
        ...


class _NodeOutputInternal:
    """Marker base of V3 node outputs (NodeOutput)."""


def prune_dict(d: dict) -> dict:
    """`d` without its None values (how V3 inputs leave unset options out of their V1 dicts)."""
    return {key: value for key, value in d.items() if value is not None}


def is_class(obj: Any) -> bool:
    """True for a class, False for an instance."""
    return isinstance(obj, type)


def first_real_override(cls: type, name: str, *, base: type = None) -> Callable | None:
    """`cls.name` bound to cls when a class between cls and `base` (default cls.GET_BASE_CLASS()) redefines it; else None."""
    if base is None:
        if not hasattr(cls, "GET_BASE_CLASS"):
            raise ValueError("base is required if cls does not have a GET_BASE_CLASS; is this a valid ComfyNode subclass?")
        base = cls.GET_BASE_CLASS()
    placeholder = getattr(base, name, None)
    if placeholder is None:
        return None
    placeholder = placeholder.__func__
    for klass in cls.mro():
        if klass is base:
            return None
        if name in klass.__dict__:
            if getattr(klass, name).__func__ is not placeholder:
                return getattr(cls, name)
    return None


class classproperty:
    """A read-only property looked up on the class (ComfyNode's RETURN_TYPES, CATEGORY, ...)."""

    def __init__(self, f):
        self.f = f

    def __get__(self, obj, owner):
        return self.f(owner)


def shallow_clone_class(cls: type, new_name: str = None) -> type:
    """A subclass of `cls` carrying a copy of its own namespace, so setting attributes on it leaves `cls` alone."""
    return type(new_name or f"{cls.__name__}Clone", (cls, *cls.__bases__), dict(cls.__dict__))


def lock_class(cls: type) -> type:
    """A copy of `cls` whose class attributes (and its instances' attributes) can no longer be set."""

    def refuse_instance(self, name, value):
        raise AttributeError(f"Cannot set attribute '{name}' on immutable instance of {type(self).__name__}")

    class LockedMeta(type(cls)):
        def __setattr__(cls_, name, value):
            raise AttributeError(f"Cannot modify class attribute '{name}' on locked class '{cls_.__name__}'")

    namespace = dict(cls.__dict__)
    namespace["__setattr__"] = refuse_instance
    return LockedMeta(cls.__name__, cls.__bases__, namespace)


def make_locked_method_func(type_obj: type, func: str, class_clone: type) -> Callable:
    """A function that calls `type_obj.func` with the locked clone as `cls` (sync or async like the method)."""
    locked = lock_class(class_clone)
    method = getattr(type_obj, func).__func__
    if asyncio.iscoroutinefunction(method):
        async def call_async(**inputs):
            return await method(locked, **inputs)
        return call_async

    def call(**inputs):
        return method(locked, **inputs)
    return call
