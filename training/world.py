"""A procedurally generated action world: stick figures doing things with objects.

Every clip is drawn from a seed: figure size, colors, position, facing, speed, scene,
camera shake, noise, distractor objects and clip length all vary. Each pixel carries the
id of the entity drawn there, which is the ground truth that alignment is scored against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .render import Canvas

# ---- entities ------------------------------------------------------------------------------

ENTITIES: tuple[tuple[str, str, str], ...] = (
    # name, kind, description (used by the corpus builder)
    ("head", "body part", "a round head on top of a body"),
    ("torso", "body part", "the upper body between shoulders and hips"),
    ("arm", "body part", "an arm from shoulder to wrist"),
    ("hand", "body part", "a hand at the end of an arm"),
    ("leg", "body part", "a leg from hip to ankle"),
    ("foot", "body part", "a foot on the end of a leg"),
    ("ball", "object", "a round ball"),
    ("box", "object", "a square box"),
    ("cup", "object", "a small cup for drinks"),
    ("chair", "object", "a chair to sit on"),
    ("sky", "scene", "the sky above"),
    ("grass", "scene", "green grass on the ground"),
    ("wall", "scene", "the wall of a room"),
    ("floor", "scene", "the floor of a room"),
    ("sand", "scene", "sand on a beach"),
    ("road", "scene", "a gray road"),
)
ENTITY_NAMES = tuple(e[0] for e in ENTITIES)
EID = {name: i + 1 for i, name in enumerate(ENTITY_NAMES)}  # 0 is "nothing"

COLORS = {
    "red": (0.85, 0.15, 0.15), "blue": (0.15, 0.3, 0.9), "green": (0.1, 0.65, 0.2),
    "yellow": (0.95, 0.85, 0.1), "purple": (0.6, 0.2, 0.75), "orange": (0.95, 0.55, 0.1),
    "black": (0.08, 0.08, 0.08), "white": (0.95, 0.95, 0.95),
}  # fmt: skip
SCENES = {  # name: (upper entity, upper color, lower entity, lower color)
    "park": ("sky", (0.55, 0.75, 0.95), "grass", (0.3, 0.6, 0.25)),
    "room": ("wall", (0.8, 0.78, 0.7), "floor", (0.55, 0.4, 0.25)),
    "beach": ("sky", (0.6, 0.8, 1.0), "sand", (0.9, 0.82, 0.55)),
    "street": ("sky", (0.7, 0.75, 0.8), "road", (0.4, 0.4, 0.42)),
}
SCENE_PHRASES = {
    "park": "in a park",
    "room": "in a room",
    "beach": "on a beach",
    "street": "on a street",
}


# ---- the figure ----------------------------------------------------------------------------


@dataclass
class Pose:
    """Angles in radians from pointing straight down; positive swings toward the facing side."""

    lean: float = 0.0  # torso from vertical
    sh_f: float = 0.15  # front arm, shoulder
    el_f: float = 0.1  # front arm, elbow (added to the shoulder angle)
    sh_b: float = -0.15  # back arm
    el_b: float = 0.1
    hip_f: float = 0.05  # front leg, hip
    kn_f: float = 0.0  # front leg, knee bend (shin swings back)
    hip_b: float = -0.05
    kn_b: float = 0.0
    head_dy: float = 0.0  # nod, in units of the head radius
    lift: float = 0.0  # airborne height, in units of leg length


@dataclass
class Obj:
    kind: str  # ball | box | cup | chair
    pos: tuple[float, float] | None = None  # absolute; None: follow `at`
    at: str | None = None  # "hand_f", "hands", "foot_f", "chest", "head"
    offset: tuple[float, float] = (0.0, 0.0)  # in units of the figure scale, facing-aware


@dataclass
class Frame:
    pose: Pose
    x: float  # hip x
    objects: list[Obj] = field(default_factory=list)


@dataclass
class Look:
    size: int
    scale: float
    facing: int  # +1 faces right, -1 left
    ground: float
    body: tuple[float, float, float]
    body_name: str
    obj: tuple[float, float, float]
    obj_name: str
    scene: str


def _vec(angle: float, length: float, facing: int) -> np.ndarray:
    return np.array([math.sin(angle) * length * facing, math.cos(angle) * length])


def joints(pose: Pose, x: float, look: Look) -> dict[str, np.ndarray]:
    s, f = look.scale, look.facing
    thigh, shin, torso, upper, fore, head_r = 13 * s, 12 * s, 21 * s, 11 * s, 10 * s, 5.5 * s
    hip0 = np.array([0.0, 0.0])
    kf = hip0 + _vec(pose.hip_f, thigh, f)
    kb = hip0 + _vec(pose.hip_b, thigh, f)
    af = kf + _vec(pose.hip_f - pose.kn_f, shin, f)
    ab = kb + _vec(pose.hip_b - pose.kn_b, shin, f)
    # Stand on the lower ankle, then rise by the airborne height.
    y_hip = look.ground - 2 * s - max(af[1], ab[1]) - pose.lift * (thigh + shin)
    hip = np.array([x, y_hip])
    neck = hip + np.array([math.sin(pose.lean) * torso * f, -math.cos(pose.lean) * torso])
    head = neck + np.array(
        [
            math.sin(pose.lean) * (head_r + 1) * f,
            -(head_r + 1) * math.cos(pose.lean) + pose.head_dy * head_r,
        ]
    )
    ef = neck + _vec(pose.sh_f, upper, f)
    eb = neck + _vec(pose.sh_b, upper, f)
    wf = ef + _vec(pose.sh_f + pose.el_f, fore, f)
    wb = eb + _vec(pose.sh_b + pose.el_b, fore, f)
    j = {"hip": hip, "neck": neck, "head": head, "elbow_f": ef, "elbow_b": eb, "wrist_f": wf,
         "wrist_b": wb, "knee_f": hip + kf, "knee_b": hip + kb, "ankle_f": hip + af, "ankle_b": hip + ab}  # fmt: skip
    j["toe_f"] = j["ankle_f"] + np.array([4 * s * f, 0.0])
    j["toe_b"] = j["ankle_b"] + np.array([4 * s * f, 0.0])
    j["chest"] = neck + (hip - neck) * 0.35 + np.array([9 * s * f, 0.0])
    j["hands"] = (wf + wb) / 2
    j["head_r"] = np.array([head_r, 0.0])
    return j


def _object_center(obj: Obj, j: dict[str, np.ndarray], look: Look) -> np.ndarray:
    if obj.pos is not None:
        return np.array(obj.pos, dtype=np.float64)
    anchor = {
        "hand_f": "wrist_f",
        "hands": "hands",
        "foot_f": "toe_f",
        "chest": "chest",
        "head": "head",
    }[obj.at]
    off = np.array([obj.offset[0] * look.facing, obj.offset[1]]) * look.scale
    return j[anchor] + off


def draw_object(c: Canvas, kind: str, center, look: Look, color) -> None:
    s = look.scale
    if kind == "ball":
        c.disk(center, 4.5 * s, color, EID["ball"])
    elif kind == "box":
        c.rect(center, 6.5 * s, 6.5 * s, color, EID["box"])
    elif kind == "cup":
        c.rect(center, 2.6 * s, 3.4 * s, color, EID["cup"])
    elif kind == "chair":
        x, y = center  # y: seat height
        brown = (0.45, 0.3, 0.15)
        back = x - 8 * s * look.facing
        c.segment((x - 8 * s, y), (x + 8 * s, y), 3 * s, brown, EID["chair"])
        c.segment((back, y), (back, y - 16 * s), 3 * s, brown, EID["chair"])
        for lx in (x - 7 * s, x + 7 * s):
            c.segment((lx, y), (lx, look.ground), 2.5 * s, brown, EID["chair"])


def draw_frame(
    frame: Frame, look: Look, distractors: list[tuple[str, tuple[float, float], tuple]]
) -> Canvas:
    c = Canvas(look.size)
    up_e, up_c, low_e, low_c = SCENES[look.scene]
    c.fill_rows(0, look.ground, up_c, EID[up_e])
    c.fill_rows(look.ground, look.size, low_c, EID[low_e])
    for kind, pos, color in distractors:
        draw_object(c, kind, pos, look, color)
    j = joints(frame.pose, frame.x, look)
    s, body = look.scale, look.body
    dark = tuple(0.6 * v for v in body)
    for obj in frame.objects:  # chairs stand behind the figure
        if obj.kind == "chair":
            draw_object(c, "chair", _object_center(obj, j, look), look, look.obj)
    limb = 3.6 * s
    # Back limbs in a darker shade, then torso and head, then front limbs.
    c.segment(j["hip"], j["knee_b"], limb, dark, EID["leg"])
    c.segment(j["knee_b"], j["ankle_b"], limb, dark, EID["leg"])
    c.segment(j["ankle_b"], j["toe_b"], limb * 0.9, (0.15, 0.15, 0.15), EID["foot"])
    c.segment(j["neck"], j["elbow_b"], limb, dark, EID["arm"])
    c.segment(j["elbow_b"], j["wrist_b"], limb, dark, EID["arm"])
    c.disk(j["wrist_b"], 2.2 * s, (0.85, 0.65, 0.5), EID["hand"])
    c.segment(j["hip"], j["neck"], 5 * s, body, EID["torso"])
    c.disk(j["head"], j["head_r"][0], (0.9, 0.72, 0.56), EID["head"])
    c.segment(j["hip"], j["knee_f"], limb, body, EID["leg"])
    c.segment(j["knee_f"], j["ankle_f"], limb, body, EID["leg"])
    c.segment(j["ankle_f"], j["toe_f"], limb * 0.9, (0.15, 0.15, 0.15), EID["foot"])
    c.segment(j["neck"], j["elbow_f"], limb, body, EID["arm"])
    c.segment(j["elbow_f"], j["wrist_f"], limb, body, EID["arm"])
    c.disk(j["wrist_f"], 2.2 * s, (0.85, 0.65, 0.5), EID["hand"])
    for obj in frame.objects:
        if obj.kind != "chair":
            draw_object(c, obj.kind, _object_center(obj, j, look), look, look.obj)
    return c
