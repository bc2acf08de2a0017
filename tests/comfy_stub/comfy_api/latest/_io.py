"""Stand-in for ComfyUI 0.8's V3 node schema (`comfy_api.latest._io`, published as `comfy_api.v0_0_2.io`).

The subset the pack uses, with 0.8's names, keyword arguments and observable results: typed inputs/outputs whose
`as_dict()` gives the V1 option dict (None values left out), `Schema`, `Hidden`, `NodeOutput`, and `ComfyNode`
with the V1-compatible class properties (INPUT_TYPES(), RETURN_TYPES, ...) computed from `define_schema()`.
Dynamic inputs (Autogrow, DynamicCombo, MatchType) and the V3 info dict are not modelled.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal

from comfy_api.internal import (_ComfyNodeInternal, _NodeOutputInternal, classproperty, first_real_override, is_class,
                                prune_dict, shallow_clone_class)


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    """Where a combo fetches its options from (the frontend calls `route`)."""

    def __init__(self, route: str, refresh_button: bool, control_after_refresh: Literal["first", "last"] = "first",
                 timeout: int = None, max_retries: int = None, refresh: int = None):
        self.route = route
        self.refresh_button = refresh_button
        self.control_after_refresh = control_after_refresh
        self.timeout = timeout
        self.max_retries = max_retries
        self.refresh = refresh

    def as_dict(self) -> dict:
        return prune_dict({"route": self.route, "refresh_button": self.refresh_button,
                           "control_after_refresh": self.control_after_refresh, "timeout": self.timeout,
                           "max_retries": self.max_retries, "refresh": self.refresh})


# ------------------------------------------------------------------------------------------------ types


class _ComfyType:
    Type = Any
    io_type: str = None


def _own_copy(klass: type | None) -> type | None:
    """A subclass of `klass` with its namespace copied, so binding `Parent` on it leaves the base class alone."""
    if klass is None:
        return None
    namespace = {k: v for k, v in klass.__dict__.items() if k not in ("__dict__", "__weakref__", "__module__", "__doc__")}
    copy = type(klass.__name__, (klass,), namespace)
    copy.__module__, copy.__doc__ = klass.__module__, klass.__doc__
    return copy


def comfytype(io_type: str, **kwargs):
    """Class decorator: bind `io_type` to a ComfyType and give it its own Input/Output classes pointing back to it."""

    def decorate(cls):
        if not issubclass(cls, _ComfyType):
            namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
            cls = type(cls.__name__, (cls, ComfyTypeIO), namespace)
        for side in ("Input", "Output"):
            if getattr(cls, side, None) is not None:
                setattr(cls, side, _own_copy(getattr(cls, side)))
                getattr(cls, side).Parent = cls
        cls.io_type = io_type
        return cls

    return decorate


class _IO_V3:
    """Base of V3 inputs and outputs: the io type comes from the ComfyType they belong to."""

    Parent: _ComfyType = None

    def __init__(self):
        pass

    def validate(self):
        pass

    @property
    def io_type(self):
        return self.Parent.io_type

    @property
    def Type(self):
        return self.Parent.Type


class Input(_IO_V3):
    """A socket input (no widget)."""

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 extra_dict=None, raw_link: bool = None):
        super().__init__()
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict if extra_dict is not None else {}
        self.rawLink = raw_link

    def as_dict(self) -> dict:
        own = prune_dict({"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip,
                          "lazy": self.lazy, "rawLink": self.rawLink})
        return own | prune_dict(self.extra_dict)

    def get_io_type(self):
        return self.io_type

    def get_all(self) -> list[Input]:
        return [self]


class WidgetInput(Input):
    """An input with a widget (a value typed on the node)."""

    def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                 default: Any = None, socketless: bool = None, widget_type: str = None, force_input: bool = None,
                 extra_dict=None, raw_link: bool = None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self) -> dict:
        return super().as_dict() | prune_dict({"default": self.default, "socketless": self.socketless,
                                               "widgetType": self.widget_type, "forceInput": self.force_input})

    def get_io_type(self):
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IO_V3):
    """A node output; its name in V1 terms is display_name, else id, else the io type."""

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        self.id = id
        self.display_name = display_name if display_name else id
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict:
        return prune_dict({"display_name": self.display_name if self.display_name else self.id,
                           "tooltip": self.tooltip, "is_output_list": self.is_output_list})

    def get_io_type(self):
        return self.io_type


class ComfyTypeI(_ComfyType):
    """A type with only an Input class."""

    class Input(Input):
        ...


class ComfyTypeIO(ComfyTypeI):
    """A type with an Input and an Output class."""

    class Output(Output):
        ...


def Custom(io_type: str) -> type[ComfyTypeIO]:
    """A ComfyType for a custom io type (a pack's own socket type)."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        ...

    return CustomComfyType


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: bool = None, label_on: str = None, label_off: str = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.label_on = label_on
            self.label_off = label_off

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: int = None, min: int = None, max: int = None, step: int = None,
                     control_after_generate: bool = None, display_mode: NumberDisplay = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate = control_after_generate
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate,
                "display": self.display_mode.value if self.display_mode else None})  # INT: the plain string


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     default: float = None, min: float = None, max: float = None, step: float = None,
                     round: float = None, display_mode: NumberDisplay = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.min, self.max, self.step, self.round = min, max, step, round
            self.display_mode = display_mode

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "min": self.min, "max": self.max, "step": self.step, "round": self.round,
                "display": self.display_mode})  # FLOAT: 0.8 keeps the enum member itself


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        def __init__(self, id: str, display_name: str = None, optional=False, tooltip: str = None, lazy: bool = None,
                     multiline=False, placeholder: str = None, default: str = None, dynamic_prompts: bool = None,
                     socketless: bool = None, force_input: bool = None, extra_dict=None, raw_link: bool = None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link)
            self.multiline = multiline
            self.placeholder = placeholder
            self.dynamic_prompts = dynamic_prompts

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({"multiline": self.multiline, "placeholder": self.placeholder,
                                                   "dynamicPrompts": self.dynamic_prompts})


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        """A dropdown; V1 sees it as ("COMBO", {"options": [...], ...})."""

        Type = str

        def __init__(self, id: str, options: list[str] | list[int] | type[Enum] = None, display_name: str = None,
                     optional=False, tooltip: str = None, lazy: bool = None, default: str | int | Enum = None,
                     control_after_generate: bool = None, upload: UploadType = None, image_folder: FolderType = None,
                     remote: RemoteOptions = None, socketless: bool = None, extra_dict=None, raw_link: bool = None):
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None,
                             extra_dict, raw_link)
            self.multiselect = False
            self.options = options
            self.control_after_generate = control_after_generate
            self.upload = upload
            self.image_folder = image_folder
            self.remote = remote

        def as_dict(self) -> dict:
            return super().as_dict() | prune_dict({
                "multiselect": self.multiselect,
                "options": self.options,
                "control_after_generate": self.control_after_generate,
                **({self.upload.value: True} if self.upload is not None else {}),
                "image_folder": self.image_folder.value if self.image_folder else None,
                "remote": self.remote.as_dict() if self.remote else None})

    class Output(Output):
        def __init__(self, id: str = None, display_name: str = None, options: list[str] = None, tooltip: str = None,
                     is_output_list=False):
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options if options is not None else []


@comfytype(io_type="IMAGE")
class Image(ComfyTypeIO):
    ...


@comfytype(io_type="MASK")
class Mask(ComfyTypeIO):
    ...


@comfytype(io_type="LATENT")
class Latent(ComfyTypeIO):
    ...


@comfytype(io_type="CONDITIONING")
class Conditioning(ComfyTypeIO):
    ...


@comfytype(io_type="CLIP")
class Clip(ComfyTypeIO):
    ...


@comfytype(io_type="VAE")
class Vae(ComfyTypeIO):
    ...


@comfytype(io_type="MODEL")
class Model(ComfyTypeIO):
    ...


@comfytype(io_type="AUDIO")
class Audio(ComfyTypeIO):
    ...


@comfytype(io_type="VIDEO")
class Video(ComfyTypeIO):
    ...


@comfytype(io_type="*")
class AnyType(ComfyTypeIO):
    ...


# ------------------------------------------------------------------------------------------------ hidden inputs


class Hidden(str, Enum):
    """Hidden values a node may ask for in its Schema; V1 sees {name: (value,)} under "hidden"."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """`cls.hidden` during a run: the requested hidden values, None for the others."""

    def __init__(self, unique_id: str, prompt: Any, extra_pnginfo: Any, dynprompt: Any,
                 auth_token_comfy_org: str, api_key_comfy_org: str, **kwargs):
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, key: str):
        return None

    @classmethod
    def from_dict(cls, d: dict | None) -> HiddenHolder:
        d = d or {}
        return cls(**{member.name: d.get(member) for member in Hidden})

    @classmethod
    def from_v3_data(cls, v3_data: dict | None) -> HiddenHolder:
        return cls.from_dict(v3_data["hidden_inputs"] if v3_data else None)


# ------------------------------------------------------------------------------------------------ schema


@dataclass
class NodeInfoV1:
    """One node's entry of /object_info, as ComfyUI 0.8 builds it for V3 nodes."""

    input: dict = None
    input_order: dict[str, list[str]] = None
    output: list[str] = None
    output_is_list: list[bool] = None
    output_name: list[str] = None
    output_tooltips: list[str] = None
    output_matchtypes: list[str] = None
    name: str = None
    display_name: str = None
    description: str = None
    python_module: Any = None
    category: str = None
    output_node: bool = None
    deprecated: bool = None
    experimental: bool = None
    api_node: bool = None


def add_to_dict_v1(i: Input, d: dict) -> None:
    """Put input `i` into a V1 INPUT_TYPES dict under "required" or "optional" (without its "optional" flag)."""
    options = i.as_dict()
    options.pop("optional", None)
    d.setdefault("optional" if i.optional else "required", {})[i.id] = (i.get_io_type(), options)


def create_input_dict_v1(inputs: list[Input]) -> dict:
    """The V1 INPUT_TYPES dict of a list of inputs ("required" always present)."""
    d = {"required": {}}
    for i in inputs:
        add_to_dict_v1(i, d)
    return d


@dataclass
class Schema:
    """Definition of a V3 node."""

    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self):
        """Raise ValueError when input ids or output ids repeat."""
        input_ids = [i.id for item in self.inputs for i in item.get_all()]
        output_ids = [o.id for o in self.outputs]
        issues = []
        if len(set(input_ids)) != len(input_ids):
            issues.append(f"Input ids must be unique, but {[k for k, n in Counter(input_ids).items() if n > 1]} are not.")
        if len(set(output_ids)) != len(output_ids):
            issues.append(f"Output ids must be unique, but {[k for k, n in Counter(output_ids).items() if n > 1]} are not.")
        if issues:
            raise ValueError("\n".join(issues))
        for item in [*self.inputs, *self.outputs]:
            item.validate()

    def finalize(self):
        """Add the hidden values implied by the flags (output node: prompt, extra_pnginfo) and default output ids."""
        self.inputs = self.inputs if self.inputs is not None else []
        self.outputs = self.outputs if self.outputs is not None else []
        self.hidden = self.hidden if self.hidden is not None else []
        implied = []
        if self.is_api_node:
            implied += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org]
        if self.is_output_node:
            implied += [Hidden.prompt, Hidden.extra_pnginfo]
        self.hidden.extend(h for h in implied if h not in self.hidden)
        for index, output in enumerate(self.outputs):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"

    def get_v1_info(self, cls) -> NodeInfoV1:
        """The /object_info entry of node class `cls` built from this schema."""
        inputs = create_input_dict_v1(self.inputs)
        for hidden in self.hidden or ():
            inputs.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        outputs = self.outputs or []
        return NodeInfoV1(
            input=inputs,
            input_order={category: list(entries) for category, entries in inputs.items()},
            output=[o.io_type for o in outputs],
            output_is_list=[o.is_output_list for o in outputs],
            output_name=[o.display_name if o.display_name else o.io_type for o in outputs],
            output_tooltips=[o.tooltip if o.tooltip else None for o in outputs],
            output_matchtypes=None,
            name=self.node_id,
            display_name=self.display_name,
            description=self.description,
            python_module=getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
            category=self.category,
            output_node=self.is_output_node,
            deprecated=self.is_deprecated,
            experimental=self.is_experimental,
            api_node=self.is_api_node,
        )


# ------------------------------------------------------------------------------------------------ node output


class _UIOutput:
    """Base of ui results (PreviewText, ...): `as_dict()` gives the history entry."""

    def __init__(self):
        pass

    def as_dict(self) -> dict:
        raise NotImplementedError


class NodeOutput(_NodeOutputInternal):
    """What a V3 execute returns: the output values, plus optional ui, expand and block_execution."""

    def __init__(self, *args: Any, ui: _UIOutput | dict = None, expand: dict = None, block_execution: str = None):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self):
        return self.args if len(self.args) > 0 else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        """A V1-style {"result": ..., "ui": ..., "expand": ...} dict as a NodeOutput."""
        return cls(*data.get("result", ()), ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index) -> Any:
        return self.args[index]


# ------------------------------------------------------------------------------------------------ node classes


_V1_PROPERTIES = {  # cached class attribute -> Schema field it mirrors
    "_DESCRIPTION": "description", "_CATEGORY": "category", "_EXPERIMENTAL": "is_experimental",
    "_DEPRECATED": "is_deprecated", "_API_NODE": "is_api_node", "_OUTPUT_NODE": "is_output_node",
    "_INPUT_IS_LIST": "is_input_list", "_NOT_IDEMPOTENT": "not_idempotent",
}


def _cached(name: str):
    """A class property answering from the class cache `name`, filled by GET_SCHEMA() on first use."""

    def read(cls):
        if getattr(cls, name) is None:
            cls.GET_SCHEMA()
        return getattr(cls, name)

    return classproperty(read)


class _ComfyNodeBaseInternal(_ComfyNodeInternal):
    """The machinery shared by V3 nodes; define nodes on ComfyNode."""

    RELATIVE_PYTHON_MODULE = None
    SCHEMA = None
    hidden: HiddenHolder = None  # set on the per-run class clone

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        return [name for name in kwargs if kwargs[name] is None]

    def __init__(self):
        self.__class__.VALIDATE_CLASS()

    @classmethod
    def GET_BASE_CLASS(cls):
        return _ComfyNodeBaseInternal

    @classmethod
    def VALIDATE_CLASS(cls):
        """Raise when the node class defines no define_schema or no execute of its own."""
        for name in ("define_schema", "execute"):
            if first_real_override(cls, name) is None:
                raise Exception(f"No {name} function was defined for node class {cls.__name__}.")

    @classproperty
    def FUNCTION(cls):  # noqa: N802
        return "EXECUTE_NORMALIZED_ASYNC" if inspect.iscoroutinefunction(cls.execute) else "EXECUTE_NORMALIZED"

    @classmethod
    def _normalize(cls, returned) -> NodeOutput:
        if returned is None:
            returned = NodeOutput()
        elif isinstance(returned, NodeOutput):
            pass
        elif isinstance(returned, tuple):
            returned = NodeOutput(*returned)
        elif isinstance(returned, dict):
            returned = NodeOutput.from_dict(returned)
        else:
            raise Exception(f"Invalid return type from node: {type(returned)}")
        if returned.expand is not None and not cls.SCHEMA.enable_expand:
            raise Exception(f"Node {cls.__name__} is not expandable, but expand included in NodeOutput; developer "
                            "should set enable_expand=True on node's Schema to allow this.")
        return returned

    @classmethod
    def EXECUTE_NORMALIZED(cls, *args, **kwargs) -> NodeOutput:
        """execute(), its result as a NodeOutput (None, tuples and V1-style dicts accepted)."""
        return cls._normalize(cls.execute(*args, **kwargs))

    @classmethod
    async def EXECUTE_NORMALIZED_ASYNC(cls, *args, **kwargs) -> NodeOutput:
        """The async execute(), its result as a NodeOutput."""
        return cls._normalize(await cls.execute(*args, **kwargs))

    @classmethod
    def PREPARE_CLASS_CLONE(cls, v3_data: dict | None) -> type:
        """A clone of the node class for one run, with `hidden` holding that run's hidden values."""
        clone = shallow_clone_class(cls if is_class(cls) else type(cls))
        clone.hidden = HiddenHolder.from_v3_data(v3_data)
        return clone

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict[str, Any]:
        """The node's /object_info entry."""
        return asdict(cls.GET_SCHEMA().get_v1_info(cls))

    DESCRIPTION = _cached("_DESCRIPTION")
    CATEGORY = _cached("_CATEGORY")
    EXPERIMENTAL = _cached("_EXPERIMENTAL")
    DEPRECATED = _cached("_DEPRECATED")
    API_NODE = _cached("_API_NODE")
    OUTPUT_NODE = _cached("_OUTPUT_NODE")
    INPUT_IS_LIST = _cached("_INPUT_IS_LIST")
    OUTPUT_IS_LIST = _cached("_OUTPUT_IS_LIST")
    RETURN_TYPES = _cached("_RETURN_TYPES")
    RETURN_NAMES = _cached("_RETURN_NAMES")
    OUTPUT_TOOLTIPS = _cached("_OUTPUT_TOOLTIPS")
    NOT_IDEMPOTENT = _cached("_NOT_IDEMPOTENT")
    _DESCRIPTION = _CATEGORY = _EXPERIMENTAL = _DEPRECATED = _API_NODE = _OUTPUT_NODE = None
    _INPUT_IS_LIST = _OUTPUT_IS_LIST = _RETURN_TYPES = _RETURN_NAMES = _OUTPUT_TOOLTIPS = _NOT_IDEMPOTENT = None

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict]:
        """The V1 input dict (required / optional / hidden), recomputed from define_schema() at every call."""
        return cls.FINALIZE_SCHEMA().get_v1_info(cls).input

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        """Check the class, finalize and validate its schema, and cache the V1 class properties (first call wins)."""
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        for cache, schema_field in _V1_PROPERTIES.items():
            if getattr(cls, cache) is None:
                setattr(cls, cache, getattr(schema, schema_field))
        if cls._RETURN_TYPES is None:
            outputs = schema.outputs or []
            cls._RETURN_TYPES = [o.io_type for o in outputs]
            cls._RETURN_NAMES = [o.display_name if o.display_name else o.io_type for o in outputs]
            cls._OUTPUT_IS_LIST = [o.is_output_list for o in outputs]
            cls._OUTPUT_TOOLTIPS = [o.tooltip if o.tooltip else None for o in outputs]
        cls.SCHEMA = schema
        return schema


class ComfyNode(_ComfyNodeBaseInternal):
    """Base class of V3 nodes: override define_schema and execute (classmethods); validate_inputs,
    fingerprint_inputs and check_lazy_status optionally."""

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs) -> list[str]:
        return [name for name in kwargs if kwargs[name] is None]

    @classmethod
    def GET_BASE_CLASS(cls):
        return ComfyNode


__all__ = [
    "FolderType", "UploadType", "RemoteOptions", "NumberDisplay", "comfytype", "Custom", "Input", "WidgetInput",
    "Output", "ComfyTypeI", "ComfyTypeIO", "Boolean", "Int", "Float", "String", "Combo", "Image", "Mask", "Latent",
    "Conditioning", "Clip", "Vae", "Model", "Audio", "Video", "AnyType", "HiddenHolder", "Hidden", "NodeInfoV1",
    "Schema", "ComfyNode", "NodeOutput", "add_to_dict_v1",
]
