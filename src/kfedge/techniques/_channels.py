"""Structured (channel) pruning of tf_keras models: find, rank and remove whole channels.

Unlike magnitude pruning (``prune``), which zeroes single weights and leaves the tensors as
large as they were, channel pruning rebuilds a *physically smaller* dense model: fewer
``filters`` / ``units``, smaller kernels, fewer MACs, on every runtime, with no sparse kernels.

The three steps, each usable on its own from a technique's ``tune``:

1. :func:`channel_groups` walks the functional / sequential graph and returns the *channel
   groups*: channels that must be removed together. A group is rooted at the producers of
   channels (``Conv1D/2D/3D``, ``SeparableConv1D/2D``, ``Dense``) and follows them through the
   channel-wise layers (``BatchNormalization``, activations, dropouts, padding, cropping,
   up-sampling, pooling, ``DepthwiseConv1D/2D``, ``Flatten``, ``Concatenate`` on the last
   axis), up to the consumers whose kernel rows shrink with it. Element-wise merges (``Add``,
   ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``) *tie* the groups of their
   inputs into one (a residual add keeps both branches consistent). A group is unprunable when
   its channels reach a model output, come from a model input, or meet a layer this module does
   not understand (``Reshape``, ``Lambda``, TensorFlow ops, custom or nested models, softmax,
   layer normalization, grouped convolutions, ``channels_first``...); its ``reason`` says which.
2. :func:`rank_channels` orders a group's channels, least important first (:func:`channel_scores`
   gives the scores): ``l1`` (the L1 norm of each producer kernel's output-channel slice, summed
   over the producers of a tied group) or ``bn_gamma`` (``|gamma|`` of the BatchNormalization
   right after each producer, summed; Network Slimming).
3. :func:`prune_channels` removes the lowest-ranked ``ratio`` of every prunable group
   (:func:`select_channels` picks, :func:`remove_channels` does the surgery on an explicit
   choice) and returns a new model with the kept weight slices copied; the input model is not
   modified.

``Flatten`` after a convolution is handled: the following ``Dense`` loses the input rows of a
removed channel at every spatial position (the channel layout repeats once per position).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from kfedge import compat
from kfedge.errors import ConfigError, ModelFormatError

#: How channels are ranked.
Criterion = Literal["l1", "bn_gamma"]
CRITERIA: tuple[str, ...] = ("l1", "bn_gamma")

#: Layers that make new channels (their ``filters`` / ``units`` shrink).
_PRODUCERS = frozenset(
    {"Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "Dense"}
)
#: Depthwise convolutions: channel ``c`` (times ``depth_multiplier``) in, the same out.
_DEPTHWISE = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
#: Layers that act on each channel alone (output channel i depends on input channel i only).
_CHANNELWISE = frozenset(
    {
        "BatchNormalization",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "Activation",
        "Identity",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
    }
)
#: Element-wise merges: their inputs' channels are tied together.
_MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})
#: Activations that act on each value alone (softmax, for one, mixes the channels).
_ELEMENTWISE_ACTIVATIONS = frozenset(
    {
        "linear",
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "sigmoid",
        "hard_sigmoid",
        "tanh",
        "swish",
        "silu",
        "hard_swish",
        "hard_silu",
        "mish",
        "softplus",
        "softsign",
        "exponential",
    }
)

#: One run of a tensor's last axis: ``(space, expand)``: the channels of channel space
#: ``space``, each repeated ``expand`` times in a row (a depthwise ``depth_multiplier``).
_Segment = tuple[int, int]
#: A tensor's last axis as a sequence of segments (a concatenation, a flattened map).
_Layout = list[_Segment]


@dataclass
class ChannelGroup:
    """Channels that must be removed together.

    Attributes:
        id: The group's name: its first producer's layer name.
        size: Channels in the group.
        producers: Layers whose output channels are the group's (``filters`` / ``units``).
        members: Channel-wise layers that carry the group (BatchNormalization, activations,
            depthwise convolutions, pooling, merges, concatenations...), in graph order.
        consumers: Layers whose input channels (kernel rows) shrink with the group.
        norms: Producer -> the BatchNormalization right after it (``bn_gamma`` ranking).
        reason: Why the group cannot be pruned; None when it can.
    """

    id: str
    size: int
    producers: tuple[str, ...]
    members: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    norms: dict[str, str] = field(default_factory=dict)
    reason: str | None = None

    @property
    def prunable(self) -> bool:
        """Whether channels of this group can be removed."""
        return self.reason is None


# -- graph analysis --------------------------------------------------------------------------
@dataclass
class _Space:
    size: int
    producer: str | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class _Analysis:
    """What :func:`_analyse` learned about a model."""

    spaces: list[_Space]
    parent: list[int]
    #: Layer name -> the layouts of its inputs / outputs (first call of the layer).
    inputs: dict[str, list[_Layout]]
    outputs: dict[str, list[_Layout]]
    #: (layer name, kind, role, space) in graph order; role: producer / member / consumer.
    uses: list[tuple[str, str, int]]
    norms: dict[str, str]
    groups: list[ChannelGroup] = field(default_factory=list)
    #: Group id -> the root space of its union.
    roots: dict[str, int] = field(default_factory=dict)

    def find(self, s: int) -> int:
        """The root of space ``s``'s union (path halving)."""
        p = self.parent
        while p[s] != s:
            p[s] = p[p[s]]
            s = p[s]
        return s

    def union(self, a: int, b: int) -> None:
        """Tie spaces ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def new_space(self, size: int, producer: str | None = None, reason: str | None = None) -> int:
        """A fresh channel space of ``size`` channels."""
        self.spaces.append(_Space(size, producer, [reason] if reason else []))
        self.parent.append(len(self.parent))
        return len(self.spaces) - 1

    def block(self, layout: _Layout, reason: str) -> None:
        """Mark every space of ``layout`` unprunable."""
        for s, _ in layout:
            if reason not in self.spaces[s].reasons:
                self.spaces[s].reasons.append(reason)

    def width(self, layout: _Layout) -> int:
        """Channels of a tensor with ``layout``."""
        return sum(self.spaces[s].size * e for s, e in layout)


def _keras() -> Any:
    return compat.keras()


def _kind(layer: Any, keras: Any) -> tuple[str, str | None]:
    """How the analysis treats ``layer``: (kind, why it is not understood, for ``unknown``)."""
    cls = type(layer).__name__
    if isinstance(layer, keras.layers.InputLayer):
        return "input", None
    if isinstance(layer, keras.Model):
        return "unknown", "a nested model (flatten it into the outer model to prune inside it)"
    if getattr(keras.layers, cls, None) is not type(layer):
        return "unknown", "a layer kfedge cannot slice (custom, Lambda or TensorFlow op)"
    fmt = getattr(layer, "data_format", None)
    if fmt not in (None, "channels_last"):
        return "unknown", f"data_format {fmt} (only channels_last is sliced)"
    if cls in _PRODUCERS or cls in _DEPTHWISE:
        if getattr(layer, "groups", 1) != 1:
            return "unknown", f"a grouped convolution (groups={layer.groups})"
        return ("producer" if cls in _PRODUCERS else "depthwise"), None
    if cls in _CHANNELWISE:
        if cls == "Activation" and not _elementwise(layer.activation):
            return "unknown", f"activation {_act_name(layer.activation)} mixes channels"
        if cls == "BatchNormalization":
            axes = list(layer.axis) if isinstance(layer.axis, list | tuple) else [layer.axis]
            ndim = len(_first_input_shape(layer))
            if len(axes) != 1 or axes[0] not in (-1, ndim - 1):
                return "unknown", f"BatchNormalization over axis {layer.axis}, not the last"
        return "channelwise", None
    if cls in _MERGES:
        return "merge", None
    if cls == "Concatenate":
        ndim = len(_first_input_shape(layer))
        if layer.axis not in (-1, ndim - 1):
            return "unknown", f"concatenation on axis {layer.axis}, not the channels"
        return "concat", None
    if cls == "Flatten":
        return "flatten", None
    return "unknown", "a layer kfedge cannot slice"


def _first_input_shape(layer: Any) -> tuple:
    shape = layer._inbound_nodes[0].keras_inputs[0].shape
    return tuple(shape)


def _act_name(act: Any) -> str:
    return str(getattr(act, "__name__", type(act).__name__))


def _elementwise(act: Any) -> bool:
    return act is None or _act_name(act) in _ELEMENTWISE_ACTIVATIONS


def _key(t: Any) -> tuple[str, int, int]:
    h = t._keras_history
    return (h.layer.name, int(h.node_index), int(h.tensor_index))


def _last_dim(t: Any) -> int:
    shape = tuple(t.shape)
    if not shape or shape[-1] is None:
        return 0
    return int(shape[-1])


def _graph_nodes(model: Any) -> list[Any]:
    """The model's nodes in topological order (model inputs first)."""
    keras = _keras()
    if not isinstance(model, keras.Model):
        raise ModelFormatError(
            f"channel pruning needs a tf_keras model, got {type(model).__module__}."
            f"{type(model).__name__} (a Keras 3 model must be rebuilt in tf_keras first)"
        )
    if not getattr(model, "_is_graph_network", False):
        raise ModelFormatError(
            f"channel pruning needs a functional or sequential tf_keras model built with a "
            f"known input shape; {model.name} is a subclassed or unbuilt model"
        )
    by_depth = model._nodes_by_depth
    return [n for d in sorted(by_depth, reverse=True) for n in by_depth[d]]


def _analyse(model: Any) -> _Analysis:  # noqa: C901 - one walk over the graph, by layer kind
    """Walk the model's graph; work out the channel layout of every tensor and the groups."""
    keras = _keras()
    an = _Analysis(spaces=[], parent=[], inputs={}, outputs={}, uses=[], norms={})
    layouts: dict[tuple[str, int, int], _Layout] = {}
    consumers: dict[tuple[str, int, int], list[Any]] = {}
    producer_space: dict[str, int] = {}
    nodes = _graph_nodes(model)
    for node in nodes:
        for t in node.keras_inputs:
            consumers.setdefault(_key(t), []).append(node.layer)

    for node in nodes:
        layer = node.layer
        name = layer.name
        outs = [t for t in _flatten(node.outputs)]
        if node.is_input or isinstance(layer, keras.layers.InputLayer):
            for t in outs:
                layouts[_key(t)] = [(an.new_space(_last_dim(t), reason=f"model input {name}"), 1)]
            continue
        ins = [layouts[_key(t)] for t in node.keras_inputs]
        kind, why = _kind(layer, keras)
        cls = type(layer).__name__
        first = name not in an.inputs
        if not first and layer.weights and kind != "unknown":
            # A shared layer with weights slices them once: tie its inputs across its calls.
            _tie(an, [an.inputs[name][0], ins[0]], name)
        out: list[_Layout]
        if kind == "producer":
            if name not in producer_space:
                act = getattr(layer, "activation", None)
                reason = None if _elementwise(act) else f"{name}: activation {_act_name(act)}"
                producer_space[name] = an.new_space(_last_dim(outs[0]), name, reason)
                an.uses.append((name, "producer", producer_space[name]))
            for s, _ in ins[0]:
                an.uses.append((name, "consumer", s))
            out = [[(producer_space[name], 1)]]
            only = consumers.get(_key(outs[0]), [])
            if (
                len(only) == 1
                and type(only[0]) is getattr(keras.layers, "BatchNormalization", None)
                and _kind(only[0], keras)[0] == "channelwise"
                and getattr(only[0], "scale", False)
            ):
                an.norms[name] = only[0].name
        elif kind == "depthwise":
            dm = int(layer.depth_multiplier)
            for s, _ in ins[0]:
                an.uses.append((name, "member", s))
            out = [[(s, e * dm) for s, e in ins[0]]]
        elif kind == "channelwise":
            for s, _ in ins[0]:
                an.uses.append((name, "member", s))
            out = [list(ins[0])]
        elif kind == "merge":
            wide = [lay for lay in ins if an.width(lay) != 1]
            for lay in ins:
                if an.width(lay) == 1 and wide:
                    an.block(lay, f"broadcast by {name}")
                for s, _ in lay:
                    an.uses.append((name, "member", s))
            _tie(an, wide or ins, name)
            out = [list((wide or ins)[0])]
        elif kind == "concat":
            cat: _Layout = []
            for lay in ins:
                cat.extend(lay)
                for s, _ in lay:
                    an.uses.append((name, "member", s))
            out = [cat]
        elif kind == "flatten":
            shape = tuple(node.keras_inputs[0].shape)[1:-1]
            if any(d is None for d in shape):
                an.block(ins[0], f"{name} (Flatten) of a map with unknown size {shape}")
                out = [[(an.new_space(_last_dim(outs[0]), reason=f"produced by {name}"), 1)]]
            else:
                for s, _ in ins[0]:
                    an.uses.append((name, "member", s))
                out = [list(ins[0]) * int(np.prod(shape, dtype=np.int64))]
        else:
            for lay in ins:
                an.block(lay, f"consumed by {name} ({cls}): {why}")
            out = [
                [(an.new_space(_last_dim(t), reason=f"produced by {name} ({cls})"), 1)]
                for t in outs
            ]
        if first:
            an.inputs[name] = ins
            an.outputs[name] = out
        for t, lay in zip(outs, out):
            layouts[_key(t)] = lay
    for t in model.outputs:
        an.block(layouts[_key(t)], f"reaches the model output {t._keras_history.layer.name}")
    _collect(an)
    return an


def _flatten(outputs: Any) -> list[Any]:
    tf = compat.tf()
    return list(tf.nest.flatten(outputs))


def _tie(an: _Analysis, layouts: list[_Layout], name: str) -> None:
    """Tie layouts that must keep the same channels (element-wise merge, shared layer)."""
    ref = layouts[0]
    ok = all(
        len(lay) == len(ref)
        and all(
            e == re_ and an.spaces[s].size == an.spaces[rs].size
            for (s, e), (rs, re_) in zip(lay, ref)
        )
        for lay in layouts[1:]
    )
    if not ok:
        for lay in layouts:
            an.block(lay, f"{name} merges channel layouts that do not line up")
        return
    for lay in layouts[1:]:
        for (s, _), (rs, _) in zip(lay, ref):
            an.union(s, rs)


def _collect(an: _Analysis) -> None:
    """Build the ChannelGroups of the unions that hold a producer."""
    by_root: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for name, role, s in an.uses:
        r = an.find(s)
        if r not in by_root:
            by_root[r] = {"producer": [], "member": [], "consumer": []}
            order.append(r)
        if name not in by_root[r][role]:
            by_root[r][role].append(name)
    reasons: dict[int, list[str]] = {}
    for s, sp in enumerate(an.spaces):
        r = an.find(s)
        for why in sp.reasons:
            if why not in reasons.setdefault(r, []):
                reasons[r].append(why)
    for r in order:
        roles = by_root[r]
        if not roles["producer"]:
            continue
        why = reasons.get(r, [])
        size = an.spaces[r].size
        if size <= 1 and not why:
            why = ["a single channel"]
        group = ChannelGroup(
            id=roles["producer"][0],
            size=size,
            producers=tuple(roles["producer"]),
            members=tuple(roles["member"]),
            consumers=tuple(roles["consumer"]),
            norms={p: an.norms[p] for p in roles["producer"] if p in an.norms},
            reason="; ".join(why[:3]) + (f" (+{len(why) - 3} more)" if len(why) > 3 else "")
            if why
            else None,
        )
        an.groups.append(group)
        an.roots[group.id] = r


# -- public API: groups and ranking ----------------------------------------------------------
def channel_groups(model: Any) -> list[ChannelGroup]:
    """The channel groups of a built functional or sequential tf_keras model.

    Args:
        model: A tf_keras ``Model`` / ``Sequential`` with a known input shape.

    Returns:
        Every group rooted at a producer (``Conv*``, ``SeparableConv*``, ``Dense``), in graph
        order, prunable or not (an unprunable group's ``reason`` says why).

    Raises:
        ModelFormatError: ``model`` is not a functional / sequential tf_keras model.
    """
    return list(_analyse(model).groups)


def _group(an: _Analysis, group: ChannelGroup | str) -> ChannelGroup:
    gid = group if isinstance(group, str) else group.id
    for g in an.groups:
        if g.id == gid:
            return g
    raise ConfigError(
        f"channel group {gid!r} is not a group of this model; groups: {[g.id for g in an.groups]}"
    )


def _weight(layer: Any, short: str) -> np.ndarray | None:
    for w in layer.weights:
        if w.name.split("/")[-1].split(":")[0] == short:
            return np.asarray(w.numpy())
    return None


def channel_scores(
    model: Any, group: ChannelGroup | str, criterion: Criterion = "l1"
) -> np.ndarray:
    """The importance of each channel of ``group`` (higher: more important).

    Criteria:

    * ``l1``: the L1 norm of each producer kernel's output-channel slice (for a
      ``SeparableConv``, its pointwise kernel), summed over the producers of a tied group.
    * ``bn_gamma``: ``|gamma|`` of the BatchNormalization right after each producer, summed
      over the producers (Network Slimming, Liu et al. 2017). Every producer of the group must
      be followed by exactly one BatchNormalization with ``scale=True``.

    Args:
        model: The model the group belongs to.
        group: A :class:`ChannelGroup` or its id.
        criterion: ``l1`` or ``bn_gamma``.

    Returns:
        A float64 array of ``group.size`` scores.

    Raises:
        ConfigError: Unknown criterion or group; ``bn_gamma`` on a group with a producer not
            followed by a BatchNormalization.
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"channel ranking criterion must be one of {CRITERIA}, got {criterion!r}")
    g = _group(_analyse(model), group)
    return _scores(model, g, criterion)


def _scores(model: Any, g: ChannelGroup, criterion: str) -> np.ndarray:
    total = np.zeros(g.size, dtype=np.float64)
    for p in g.producers:
        layer = model.get_layer(p)
        if criterion == "bn_gamma":
            if p not in g.norms:
                raise ConfigError(
                    f"bn_gamma ranking needs a BatchNormalization (scale=True) right after "
                    f"every producer of group {g.id}, but {p} has none; use criterion 'l1'"
                )
            gamma = _weight(model.get_layer(g.norms[p]), "gamma")
            total += np.abs(gamma.astype(np.float64))
        else:
            kernel = _weight(layer, "pointwise_kernel")
            if kernel is None:
                kernel = _weight(layer, "kernel")
            k = np.abs(kernel.astype(np.float64)).reshape(-1, kernel.shape[-1])
            total += k.sum(axis=0)
    return total


def rank_channels(model: Any, group: ChannelGroup | str, criterion: Criterion = "l1") -> np.ndarray:
    """The channels of ``group``, least important first (see :func:`channel_scores`).

    Args:
        model: The model the group belongs to.
        group: A :class:`ChannelGroup` or its id.
        criterion: ``l1`` (default: summed L1 norms of the producer kernels' output-channel
            slices) or ``bn_gamma`` (summed ``|gamma|`` of the BatchNormalizations after the
            producers).

    Returns:
        Channel indices (int64) in ascending order of score; ties keep index order.
    """
    return np.argsort(channel_scores(model, group, criterion), kind="stable").astype(np.int64)


# -- selection ---------------------------------------------------------------------------------
def keep_count(size: int, ratio: float, min_channels: int = 8, round_to: int = 8) -> int:
    """How many of ``size`` channels to keep when removing a fraction ``ratio``.

    ``size - floor(ratio * size)``, raised to ``min_channels`` (never above ``size``), then,
    when ``size > round_to``, rounded *up* to a multiple of ``round_to`` (SIMD kernels of edge
    runtimes like multiples of 8), never above ``size``.
    """
    keep = size - int(np.floor(ratio * size + 1e-9))
    keep = max(keep, min(min_channels, size), min(1, size))
    if round_to > 1 and size > round_to:
        keep = min(size, -(-keep // round_to) * round_to)
    return int(keep)


def _check_params(ratio: float, criterion: str, min_channels: int, round_to: int) -> None:
    if not 0.0 <= float(ratio) < 1.0:
        raise ConfigError(f"channel pruning ratio must be in [0, 1), got {ratio}")
    if criterion not in CRITERIA:
        raise ConfigError(f"channel ranking criterion must be one of {CRITERIA}, got {criterion!r}")
    if int(min_channels) < 1:
        raise ConfigError(f"min_channels must be at least 1, got {min_channels}")
    if int(round_to) < 1:
        raise ConfigError(f"round_to must be at least 1, got {round_to}")


def _select(
    model: Any,
    an: _Analysis,
    ratio: float,
    criterion: str,
    min_channels: int,
    round_to: int,
    skip_layers: Iterable[str],
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    skip = set(skip_layers)
    names = {layer.name for layer in model.layers}
    unknown = sorted(skip - names)
    if unknown:
        raise ConfigError(f"skip_layers {unknown} are not layers of the model")
    keep: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    fallback: dict[str, str] = {}
    for g in an.groups:
        if not g.prunable:
            continue
        hit = sorted(skip & set(g.producers + g.members + g.consumers))
        if hit:
            skipped[g.id] = f"skip_layers {hit}"
            continue
        crit = criterion
        if crit == "bn_gamma" and any(p not in g.norms for p in g.producers):
            missing = [p for p in g.producers if p not in g.norms]
            fallback[g.id] = f"no BatchNormalization after {missing}; ranked by l1"
            crit = "l1"
        n = keep_count(g.size, ratio, min_channels, round_to)
        order = np.argsort(_scores(model, g, crit), kind="stable")
        keep[g.id] = np.sort(order[g.size - n :]).astype(np.int64)
    return keep, skipped, fallback


def select_channels(
    model: Any,
    ratio: float,
    criterion: Criterion = "l1",
    min_channels: int = 8,
    round_to: int = 8,
    skip_layers: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """The channels to keep in each prunable group (see :func:`prune_channels` for the rules).

    Returns:
        Group id -> sorted indices of the kept channels, for every prunable group not touching
        ``skip_layers``.
    """
    _check_params(ratio, criterion, min_channels, round_to)
    an = _analyse(model)
    return _select(model, an, ratio, criterion, min_channels, round_to, skip_layers)[0]


# -- surgery -----------------------------------------------------------------------------------
def _kept(an: _Analysis, layout: _Layout, keep: dict[int, np.ndarray]) -> np.ndarray | None:
    """Indices of the kept channels of a tensor with ``layout``; None when all are kept."""
    parts: list[np.ndarray] = []
    offset = 0
    changed = False
    for s, e in layout:
        size = an.spaces[s].size
        k = keep.get(an.find(s))
        if k is None:
            k = np.arange(size, dtype=np.int64)
        elif len(k) != size:
            changed = True
        parts.append((k[:, None] * e + np.arange(e, dtype=np.int64)).ravel() + offset)
        offset += size * e
    if not changed:
        return None
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _take(a: np.ndarray, idx: np.ndarray | None, axis: int) -> np.ndarray:
    return a if idx is None else np.take(a, idx, axis=axis)


def _sliced_weights(
    layer: Any, cin: np.ndarray | None, cout: np.ndarray | None
) -> list[np.ndarray]:
    """``layer``'s weights with the kept input (``cin``) / output (``cout``) channels."""
    cls = type(layer).__name__
    out: list[np.ndarray] = []
    for w in layer.weights:
        a = np.asarray(w.numpy())
        short = w.name.split("/")[-1].split(":")[0]
        if cls in _PRODUCERS and short in ("kernel", "pointwise_kernel"):
            if short == "pointwise_kernel" and cin is not None:
                dm = int(layer.depth_multiplier)
                cin_dm = (cin[:, None] * dm + np.arange(dm)).ravel()
                a = _take(a, cin_dm, -2)
            elif short == "kernel":
                a = _take(a, cin, -2)
            a = _take(a, cout, -1)
        elif cls in _PRODUCERS and short == "depthwise_kernel":
            a = _take(a, cin, -2)
        elif cls in _PRODUCERS and short == "bias":
            a = _take(a, cout, 0)
        elif cls in _DEPTHWISE:
            a = _take(a, cin, -2) if short == "depthwise_kernel" else _take(a, cout, 0)
        elif cls == "BatchNormalization":
            a = _take(a, cin, 0)
        elif cls == "PReLU" and cin is not None and a.shape[-1] != 1:
            a = _take(a, cin, -1)
        out.append(a)
    return out


def count_macs(model: Any) -> int | None:
    """Multiply-accumulates of one forward pass of one sample (conv, depthwise, dense layers).

    Returns:
        The count, or None when a spatial size is unknown.
    """
    total = 0
    for node in _graph_nodes(model):
        layer = node.layer
        cls = type(layer).__name__
        if cls not in _PRODUCERS and cls not in _DEPTHWISE:
            continue
        shape = tuple(_flatten(node.outputs)[0].shape)[1:-1]
        if any(d is None for d in shape):
            return None
        positions = int(np.prod(shape, dtype=np.int64))
        per = sum(int(np.prod(w.shape)) for w in layer.weights if "kernel" in w.name)
        total += positions * per
    return int(total)


def remove_channels(model: Any, keep: Mapping[str, Sequence[int]]) -> tuple[Any, dict[str, Any]]:
    """Rebuild ``model`` without the channels not listed in ``keep`` (the surgery).

    Producers get fewer ``filters`` / ``units`` (their kernel's output slice and bias are
    copied); BatchNormalization ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``,
    depthwise kernels and biases, and PReLU ``alpha`` keep their kept channels; consumers keep
    the kernel rows of the kept input channels (at each concatenation offset, at every
    position after a ``Flatten``). Every other weight is copied unchanged.

    Args:
        model: A functional / sequential tf_keras model (not modified).
        keep: Prunable group id -> indices of the channels to keep (groups not named keep all).

    Returns:
        ``(new_model, stats)``: a new, uncompiled model and ``params_before``,
        ``params_after``, ``macs_before``, ``macs_after`` and ``groups`` (id -> kept, total).

    Raises:
        ConfigError: An unknown or unprunable group, or indices out of range / empty.
    """
    an = _analyse(model)
    return _rebuild(model, an, keep)


def _rebuild(
    model: Any, an: _Analysis, keep: Mapping[str, Sequence[int]]
) -> tuple[Any, dict[str, Any]]:
    keras = _keras()
    by_root: dict[int, np.ndarray] = {}
    groups: dict[str, dict[str, int]] = {}
    for gid, idx in keep.items():
        g = _group(an, gid)
        if not g.prunable:
            raise ConfigError(f"channel group {gid} cannot be pruned: {g.reason}")
        arr = np.unique(np.asarray(list(idx), dtype=np.int64))
        if len(arr) != len(list(idx)) or not len(arr) or arr[0] < 0 or arr[-1] >= g.size:
            raise ConfigError(
                f"channels to keep in group {gid} must be distinct indices in [0, {g.size}), "
                f"at least one; got {len(list(idx))} indices"
            )
        by_root[an.roots[gid]] = arr
        groups[gid] = {"kept": int(len(arr)), "total": int(g.size)}

    plan: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    widths: dict[str, int] = {}
    for layer in model.layers:
        name = layer.name
        if name not in an.inputs:
            continue
        ins, outs = an.inputs[name], an.outputs[name]
        cin = _kept(an, ins[0], by_root) if ins else None
        cout = _kept(an, outs[0], by_root) if outs else None
        plan[name] = (cin, cout)
        if type(layer).__name__ in _PRODUCERS and cout is not None:
            widths[name] = int(len(cout))

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in widths:
            cfg["units" if "units" in cfg else "filters"] = widths[layer.name]
        return layer.__class__.from_config(cfg)

    try:
        new = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError) as exc:
        raise ModelFormatError(
            f"channel pruning could not rebuild {model.name} (functional or sequential tf_keras "
            f"models of built-in layers only): {exc}"
        ) from exc
    for layer in model.layers:
        if not layer.weights:
            continue
        cin, cout = plan.get(layer.name, (None, None))
        weights = _sliced_weights(layer, cin, cout)
        target = new.get_layer(layer.name)
        try:
            target.set_weights(weights)
        except ValueError as exc:  # pragma: no cover - a slicing rule out of step with Keras
            raise ModelFormatError(
                f"channel pruning: the rebuilt layer {layer.name} "
                f"({type(layer).__name__}) does not take the sliced weights: {exc}"
            ) from exc
    stats: dict[str, Any] = {
        "params_before": int(model.count_params()),
        "params_after": int(new.count_params()),
        "macs_before": count_macs(model),
        "macs_after": count_macs(new),
        "groups": groups,
    }
    return new, stats


def prune_channels(
    model: Any,
    ratio: float,
    criterion: Criterion = "l1",
    min_channels: int = 8,
    round_to: int = 8,
    skip_layers: Iterable[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """Remove the lowest-ranked ``ratio`` of the channels of every prunable group.

    Each prunable group of ``size`` channels keeps :func:`keep_count` channels: at least
    ``min_channels`` (a smaller group keeps all), rounded up to a multiple of ``round_to`` when
    ``size > round_to``; the kept ones are the best by ``criterion`` (:func:`channel_scores`).
    With ``criterion="bn_gamma"``, a group whose producers lack a BatchNormalization is ranked
    by ``l1`` (``stats["criterion_fallback"]`` names it). The result is not fine-tuned.

    Args:
        model: A built functional / sequential tf_keras model (not modified).
        ratio: Fraction of each group's channels to remove, in [0, 1).
        criterion: ``l1`` or ``bn_gamma``.
        min_channels: Fewest channels a group keeps.
        round_to: Kept channel counts are multiples of this (1: no rounding).
        skip_layers: Layers whose groups are left whole (a group is left whole when any of its
            producers, members or consumers is named).

    Returns:
        ``(new_model, stats)``; stats: ``criterion``, ``ratio``, ``params_before``,
        ``params_after``, ``macs_before``, ``macs_after``, ``channels_before``,
        ``channels_after`` (over the pruned groups), ``groups`` (id -> ``kept``, ``total``),
        ``unprunable_groups`` (id -> reason), ``criterion_fallback``.

    Raises:
        ConfigError: A parameter out of range, an unknown criterion or skipped layer.
        ModelFormatError: Not a functional / sequential tf_keras model.
    """
    _check_params(ratio, criterion, min_channels, round_to)
    an = _analyse(model)
    keep, skipped, fallback = _select(
        model, an, ratio, criterion, min_channels, round_to, skip_layers
    )
    new, stats = _rebuild(model, an, keep)
    unprunable = {g.id: str(g.reason) for g in an.groups if not g.prunable}
    unprunable.update(skipped)
    return new, {
        "criterion": criterion,
        "ratio": float(ratio),
        **stats,
        "channels_before": sum(v["total"] for v in stats["groups"].values()),
        "channels_after": sum(v["kept"] for v in stats["groups"].values()),
        "unprunable_groups": unprunable,
        "criterion_fallback": fallback,
    }
