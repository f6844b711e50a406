"""Choreography: each action maps clip progress u in [0, 1] to a figure pose and objects.

Seen classes train the model; held-out classes recombine the same verbs and objects
("kicking a box" = the kick of "kicking a ball" + the box of "lifting a box") for zero-shot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .world import BALL_RADIUS, RESTING_HEIGHT, Frame, Obj, Pose


@dataclass(frozen=True)
class Motion:
    x0: float  # hip x at the start
    facing: int
    scale: float
    size: int  # canvas side
    ground: float
    cycles: float  # repetitions over the clip (speed)


def osc(u: float, m: Motion, phase: float = 0.0) -> float:
    return math.sin(2 * math.pi * (m.cycles * u + phase))


def ramp(u: float, a: float, b: float) -> float:
    t = min(1.0, max(0.0, (u - a) / (b - a)))
    return t * t * (3 - 2 * t)


def travel(u: float, m: Motion, speed: float) -> float:
    """x after moving `speed` canvas widths over the clip toward the facing side."""
    return m.x0 + m.facing * speed * m.size * u


def _flight(
    u: float, start: float, m: Motion, x_start: float, y_start: float, vx: float, up: float
):
    """Absolute position of an object launched at progress `start` (a parabola)."""
    t = max(0.0, u - start)
    x = x_start + m.facing * vx * m.size * t
    y = y_start - up * m.size * t + 1.6 * m.size * t * t
    return (x, min(y, m.ground - 4 * m.scale))


def waving(u, m):
    return Frame(Pose(sh_f=2.7, el_f=0.35 * osc(u, m)), m.x0)


def clapping(u, m):
    a = 0.25 + 0.25 * (1 + osc(u, m))
    return Frame(Pose(sh_f=1.4, el_f=a, sh_b=1.4, el_b=a), m.x0)


def jumping(u, m):
    h = max(0.0, osc(u, m))
    return Frame(
        Pose(
            lift=0.45 * h,
            hip_f=0.5 * (1 - h),
            kn_f=0.9 * (1 - h),
            hip_b=0.5 * (1 - h),
            kn_b=0.9 * (1 - h),
            sh_f=1.0 * h + 0.2,
            sh_b=1.0 * h,
        ),
        m.x0,
    )


def squatting(u, m):
    d = 0.5 * (1 - math.cos(2 * math.pi * m.cycles * u))
    return Frame(
        Pose(
            hip_f=1.3 * d,
            kn_f=2.2 * d,
            hip_b=1.2 * d,
            kn_b=2.1 * d,
            lean=0.35 * d,
            sh_f=1.5 * d,
            sh_b=1.5 * d,
        ),
        m.x0,
    )


def _gait(u, m, amp, knee, arms):
    a = osc(u, m)
    return Pose(
        hip_f=amp * a,
        kn_f=knee * max(0.0, -a),
        hip_b=-amp * a,
        kn_b=knee * max(0.0, a),
        sh_f=-arms * a,
        sh_b=arms * a,
        el_f=0.3,
        el_b=0.3,
    )


def walking(u, m):
    return Frame(_gait(u, m, 0.4, 0.5, 0.35), travel(u, m, 0.2))


def running(u, m):
    p = _gait(u, m, 0.85, 1.4, 0.9)
    p.lean, p.el_f, p.el_b = 0.25, 1.4, 1.4
    p.lift = 0.08 * abs(osc(u, m))
    return Frame(p, travel(u, m, 0.35))


def _kick(u, m, obj):
    swing = ramp(u, 0.25, 0.45) - ramp(u, 0.55, 0.8)
    back = ramp(u, 0.1, 0.25) * (1 - ramp(u, 0.25, 0.4))
    pose = Pose(
        hip_f=1.4 * swing - 0.6 * back,
        kn_f=0.9 * back,
        sh_f=-0.6 * swing,
        sh_b=0.7 * swing,
        lean=-0.15 * swing,
    )
    x_obj = m.x0 + m.facing * 14 * m.scale
    y_obj = m.ground - RESTING_HEIGHT[obj] * m.scale
    pos = _flight(u, 0.4, m, x_obj, y_obj, 0.9, 1.0) if u > 0.4 else (x_obj, y_obj)
    return Frame(pose, m.x0, [Obj(obj, pos=pos)])


def _throw(u, m, obj):
    wind = ramp(u, 0.05, 0.35) * (1 - ramp(u, 0.35, 0.5))
    fwd = ramp(u, 0.35, 0.5)
    pose = Pose(
        sh_f=2.6 * wind + 1.6 * fwd - 0.3 * (1 - wind - fwd),
        el_f=0.8 * wind,
        lean=-0.1 * wind + 0.2 * fwd,
        hip_f=0.3 * fwd,
    )
    if u < 0.47:
        objs = [Obj(obj, at="hand_f")]
    else:
        start = (m.x0 + m.facing * 16 * m.scale, m.ground - 42 * m.scale)
        objs = [Obj(obj, pos=_flight(u, 0.47, m, *start, 1.1, 0.5))]
    return Frame(pose, m.x0, objs)


def _lift(u, m, obj):
    up = 0.5 * (1 - math.cos(2 * math.pi * m.cycles * u))
    bend = 1 - ramp(up, 0.0, 0.35)
    pose = Pose(
        lean=0.9 * bend,
        hip_f=0.7 * bend,
        kn_f=1.0 * bend,
        hip_b=0.6 * bend,
        kn_b=0.9 * bend,
        sh_f=0.9 + 1.9 * up,
        sh_b=0.9 + 1.9 * up,
        el_f=0.2,
        el_b=0.2,
    )
    return Frame(pose, m.x0, [Obj(obj, at="hands", offset=(0, -3 * up))])


def _carry(u, m, obj):
    p = _gait(u, m, 0.4, 0.5, 0.0)
    p.sh_f = p.sh_b = 1.2
    p.el_f = p.el_b = 0.5
    return Frame(p, travel(u, m, 0.2), [Obj(obj, at="chest")])


def _drop(u, m, obj):
    release = 0.3 + 0.2 * (m.cycles % 1)
    pose = Pose(
        sh_f=1.2 - 0.8 * ramp(u, release, release + 0.15),
        sh_b=1.2 - 0.8 * ramp(u, release, release + 0.15),
        el_f=0.5,
        el_b=0.5,
    )
    if u < release:
        return Frame(pose, m.x0, [Obj(obj, at="chest")])
    start = (m.x0 + m.facing * 11 * m.scale, m.ground - 30 * m.scale)
    return Frame(pose, m.x0, [Obj(obj, pos=_flight(u, release, m, *start, 0.02, -0.2))])


def _push(u, m, obj):
    p = _gait(u, m, 0.35, 0.4, 0.0)
    p.lean, p.sh_f, p.sh_b, p.el_f, p.el_b = 0.45, 1.55, 1.5, 0.1, 0.1
    x = travel(u, m, 0.15)
    if obj == "chair":
        return Frame(
            p, x, [Obj("chair", pos=(x + m.facing * 24 * m.scale, m.ground - 10 * m.scale))]
        )
    rest = m.ground - RESTING_HEIGHT[obj] * m.scale
    return Frame(p, x, [Obj(obj, pos=(x + m.facing * 21 * m.scale, rest))])


def drinking(u, m):
    up = 0.5 * (1 - math.cos(2 * math.pi * m.cycles * u))
    return Frame(
        Pose(sh_f=0.4 + 0.9 * up, el_f=0.6 + 1.6 * up, head_dy=-0.1 * up),
        m.x0,
        [Obj("cup", at="hand_f", offset=(1.5, -2))],
    )


def raising_arms(u, m):
    a = 0.5 * (1 - math.cos(2 * math.pi * m.cycles * u))
    return Frame(Pose(sh_f=0.15 + 2.8 * a, sh_b=0.15 + 2.8 * a, el_f=0.05, el_b=0.05), m.x0)


def punching(u, m):
    a = max(0.0, osc(u, m))
    return Frame(
        Pose(
            sh_f=1.1 + 0.45 * a,
            el_f=1.6 * (1 - a),
            sh_b=1.1,
            el_b=1.6,
            lean=0.1 * a,
            hip_f=0.3,
            hip_b=-0.3,
        ),
        m.x0,
    )


def bouncing(u, m):
    a = abs(osc(u, m))  # ball height
    hand = (m.x0 + m.facing * 14 * m.scale, m.ground - 24 * m.scale)
    low, high = m.ground - BALL_RADIUS * m.scale, hand[1] + (BALL_RADIUS + 0.5) * m.scale
    y = low - (low - high) * a
    return Frame(
        Pose(sh_f=1.0, el_f=0.5 - 0.4 * a, lean=0.15), m.x0, [Obj("ball", pos=(hand[0], y))]
    )


def catching(u, m):
    catch = 0.55
    arms = ramp(u, 0.2, 0.5)
    pose = Pose(sh_f=0.2 + 1.3 * arms, sh_b=0.2 + 1.3 * arms, el_f=0.3, el_b=0.3)
    if u >= catch:
        return Frame(pose, m.x0, [Obj("ball", at="hands", offset=(3, 0))])
    t = (catch - u) / catch
    x = m.x0 + m.facing * (18 * m.scale + 0.8 * m.size * t)
    y = m.ground - 34 * m.scale - 0.6 * m.size * t * (1 - t)
    return Frame(pose, m.x0, [Obj("ball", pos=(x, y))])


def _sit(d, m):
    pose = Pose(
        hip_f=1.5 * d, kn_f=1.5 * d, hip_b=1.45 * d, kn_b=1.45 * d, sh_f=0.4 * d, sh_b=0.3 * d
    )
    return Frame(
        pose, m.x0, [Obj("chair", pos=(m.x0 - m.facing * 2 * m.scale, m.ground - 13 * m.scale))]
    )


def sitting(u, m):
    return _sit(ramp(u, 0.15, 0.7), m)


def standing_up(u, m):
    return _sit(1 - ramp(u, 0.3, 0.85), m)


def touching_toes(u, m):
    d = 0.5 * (1 - math.cos(2 * math.pi * m.cycles * u))
    return Frame(
        Pose(lean=1.5 * d, sh_f=0.1 + 0.2 * d, sh_b=0.1 + 0.2 * d, hip_f=-0.25 * d, hip_b=-0.3 * d),
        m.x0,
    )


def hopping(u, m):
    h = max(0.0, osc(u, m))
    return Frame(
        Pose(
            lift=0.3 * h,
            hip_b=0.6,
            kn_b=1.8,
            hip_f=0.1 * (1 - h),
            sh_f=0.6,
            sh_b=0.6,
            el_f=0.4,
            el_b=0.4,
        ),
        m.x0,
    )


def nodding(u, m):
    return Frame(Pose(head_dy=0.45 * osc(u, m), lean=0.04 * osc(u, m)), m.x0)


def stretching(u, m):
    a = 0.5 * (1 - math.cos(2 * math.pi * m.cycles * u))
    return Frame(Pose(sh_f=0.3 + 1.3 * a, sh_b=-0.3 - 1.3 * a, el_f=0.0, el_b=0.0), m.x0)


def rolling(u, m):
    pose = Pose(
        lean=0.9,
        hip_f=0.5,
        kn_f=0.8,
        hip_b=0.4,
        kn_b=0.7,
        sh_f=0.7 + 0.5 * ramp(u, 0.1, 0.4),
        sh_b=0.6,
    )
    start = m.x0 + m.facing * 16 * m.scale
    x = start + m.facing * 0.7 * m.size * max(0.0, u - 0.35)
    return Frame(pose, m.x0, [Obj("ball", pos=(x, m.ground - BALL_RADIUS * m.scale))])


Action = Callable[[float, Motion], Frame]

SEEN: dict[str, Action] = {
    "waving": waving,
    "clapping": clapping,
    "jumping": jumping,
    "squatting": squatting,
    "walking": walking,
    "running": running,
    "kicking a ball": lambda u, m: _kick(u, m, "ball"),
    "throwing a ball": lambda u, m: _throw(u, m, "ball"),
    "lifting a box": lambda u, m: _lift(u, m, "box"),
    "drinking from a cup": drinking,
    "raising both arms": raising_arms,
    "punching": punching,
    "bouncing a ball": bouncing,
    "pushing a box": lambda u, m: _push(u, m, "box"),
    "catching a ball": catching,
    "sitting on a chair": sitting,
    "standing up from a chair": standing_up,
    "touching toes": touching_toes,
    "hopping on one leg": hopping,
    "nodding": nodding,
    "stretching arms sideways": stretching,
    "rolling a ball": rolling,
    "carrying a box": lambda u, m: _carry(u, m, "box"),
    "dropping a box": lambda u, m: _drop(u, m, "box"),
}

# Zero-shot: every word occurs in a seen label, never this combination.
HELD_OUT: dict[str, Action] = {
    "kicking a box": lambda u, m: _kick(u, m, "box"),
    "throwing a box": lambda u, m: _throw(u, m, "box"),
    "lifting a ball": lambda u, m: _lift(u, m, "ball"),
    "carrying a ball": lambda u, m: _carry(u, m, "ball"),
    "dropping a ball": lambda u, m: _drop(u, m, "ball"),
    "pushing a chair": lambda u, m: _push(u, m, "chair"),
}

ACTIONS: dict[str, Action] = {**SEEN, **HELD_OUT}
# How far an action moves the figure (canvas widths), to place it inside the frame.
TRAVEL = {"walking": 0.2, "running": 0.35, "carrying a box": 0.2, "carrying a ball": 0.2,
          "pushing a box": 0.15, "pushing a chair": 0.15}  # fmt: skip
# One-shot actions play once whatever the speed.
ONE_SHOT = {"kicking a ball", "throwing a ball", "catching a ball", "sitting on a chair",
            "standing up from a chair", "rolling a ball", "dropping a box", "kicking a box",
            "throwing a box", "dropping a ball"}  # fmt: skip
