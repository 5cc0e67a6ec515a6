"""`InProcessGrid`: a Flower Grid that hands every message straight to a ClientApp.

No Ray, no processes, no sockets: the ServerApp's logic runs against real ClientApp handlers in
one process, in seconds. Every message's content and every reply's still cross Flower's wire
format: deflated to the bytes a SuperLink stores and inflated again (`over_the_wire`), so what a
node computes from is what a deployment would deliver. Tests use it to check the flow and its
numbers; it is also the test to run first when the flwr pin moves, since it touches flwr
internals (as ``run_simulation`` does): the process's `TaskIdentity`, which ``Message()`` reads,
the message ids a grid assigns, and the inflatable-object helpers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fednot.integrations.flower.settings import ConfigValue

CLIENT_APP_ERROR = 1  # the error code of a reply whose handler raised


class InProcessGrid(Grid):
    """One node per entry of ``node_configs``, each with its own `Context`.

    Args:
        client_app: the ClientApp every node runs (any callable of a message and a context).
        node_configs: each node's ``node_config`` (e.g. ``{"partition-id": 0}``).
        run_config: the run configuration every node sees.
        run_id: the run id of the contexts and messages.
        seed: seeds the random 64-bit node ids.
    """

    def __init__(
        self,
        client_app: Callable[[Message, Context], Message],
        node_configs: Sequence[Mapping[str, ConfigValue]],
        run_config: Mapping[str, ConfigValue] | None = None,
        *,
        run_id: int = 1,
        seed: int = 0,
    ) -> None:
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = (
            1,
            run_id,
            SUPERLINK_NODE_ID,
        )
        rng = random.Random(seed)
        self.client_app = client_app
        self.contexts: dict[int, Context] = {}
        for node_config in node_configs:
            node = rng.randrange(1, 2**63)
            self.contexts[node] = Context(
                run_id, node, dict(node_config), RecordDict(), dict(run_config or {})
            )
        self._run = Run.create_empty(run_id)
        self._replies: dict[str, Message] = {}
        self.delivered: list[Message] = []  # every message handed to a node, in order

    def set_run(self, run: Run) -> None:
        """Use ``run`` as the grid's run."""
        self._run = run

    @property
    def run(self) -> Run:
        """The grid's run."""
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """A message to ``dst_node_id``."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """The node ids."""
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Deliver each message to its node's ClientApp at once; keep the replies."""
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid4().hex
            self.delivered.append(message)
            self._replies[message.metadata.message_id] = self._handle(message)
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """The replies to ``message_ids`` (each handed out once)."""
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver ``messages`` and return their replies."""
        return self.pull_messages(self.push_messages(messages))

    def _handle(self, message: Message) -> Message:
        node = message.metadata.dst_node_id
        if node not in self.contexts:
            return Message(Error(CLIENT_APP_ERROR, f"no node {node}"), reply_to=message)
        if message.has_content():
            message.content = over_the_wire(message.content)
        try:
            reply: Message = self.client_app(message, self.contexts[node])
        except Exception as e:  # noqa: BLE001 - a failing ClientApp becomes an error reply
            return Message(Error(CLIENT_APP_ERROR, f"{type(e).__name__}: {e}"), reply_to=message)
        if reply.has_content():
            reply.content = over_the_wire(reply.content)
        return reply


def over_the_wire(content: RecordDict) -> RecordDict:
    """``content`` as its receiver gets it: every object deflated to bytes, then inflated."""
    contents = {key: obj.deflate() for key, obj in get_all_nested_objects(content).items()}
    received = inflate_object_from_contents(content.object_id, contents)
    if not isinstance(received, RecordDict):  # the wire format would have changed under us
        raise TypeError(f"Expected a RecordDict back from the wire, got {type(received)}.")
    return received
