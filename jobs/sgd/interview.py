"""The interview questions asked about this job in particular, answered as prose around
figures (:mod:`scaling.present.answers`); the questions every job answers are in
:mod:`scaling.present.interview`."""

from __future__ import annotations

from scaling.present.answers import Answer, Ask


def answers(ask: Ask) -> list[Answer]:
    """The job's own interview questions and a follow-up, each answered with figures from
    ``ask``."""
    ring, local, server = "ring-allreduce", "local-sgd", "parameter-server"
    a = Answer("The training data is too big for one machine: what do you do with SGD?")
    a.say(
        "Shard the rows over the workers and keep a replica of the model on each (data "
        f"parallelism): each worker holds {ask.data_bytes(a)} of the rows, which never "
        "move. Each step every worker computes the gradient of its share of the batch "
        f"({ask.step(a, 'map', 'flops', variant=ring)} for the busiest), and the "
        "workers all-reduce the gradients in a ring while backward is still running "
        "(buckets, as PyTorch's DistributedDataParallel does): each sends "
        f"{ask.step(a, 'combine', 'sends', variant=ring)} per step for the model's "
        f"{ask.parameters(a)} parameters, whatever the rows, and every replica takes the "
        "same step: synchronous SGD, the single-machine algorithm on the same batch, "
        "split p ways."
    )
    a.say(
        "When the all-reduce costs too much, local SGD averages the models every H steps "
        f"instead ({ask.step(a, 'combine', 'sends', variant=local)} per step on average), "
        "at the price of replicas drifting apart between averages. A parameter server "
        "takes every gradient and sends back parameters through one process: "
        f"{ask.step(a, '*', 'moved', variant=server)} a step all through rank 0, its hot "
        "spot; asynchronous updates hide stragglers but apply stale gradients. If the "
        "model, not the data, is too big for one machine, shard the model instead "
        "(tensor or pipeline parallelism, or ZeRO/FSDP's sharded optimiser state)."
    )
    bigger = {"batch_size": 4 * ask.config.batch_size}
    follow = Answer("Follow-up: why do larger batches scale better, and what stops them?")
    follow.say(
        "Per step the compute grows with the batch and the communication does not: four "
        f"times the batch makes the busiest worker's gradient "
        f"{ask.step(follow, 'map', 'flops', variant=ring, config=bigger)} instead of "
        f"{ask.step(follow, 'map', 'flops', variant=ring)}, while each worker still sends "
        f"{ask.step(follow, 'combine', 'sends', variant=ring, config=bigger)}. What stops "
        "it is statistics, not systems: past a critical batch size a step does not "
        "reduce the loss more, so steps to a target stop falling (Shallue et al., JMLR "
        "2019; Goyal et al.'s linear learning-rate scaling with warm-up holds up to a "
        "point)."
    )
    return [a, follow]
