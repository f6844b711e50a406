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
# Sizes in units of the figure scale. Objects and limbs are drawn thick enough to fill most
# of a model patch (12 px at 96 px input, 16 px of a 128 px frame): entities thinner than a
# patch are never resolved by the regions that alignment works on.
BALL_RADIUS = 7.5
BOX_HALF = 6.5
CUP_HALF = (4.2, 5.2)
HAND_RADIUS = 3.6
LIMB_WIDTH = 5.6
TORSO_WIDTH = 8.0
CHAIR_WIDTH = (4.5, 3.5)  # seat and back, legs
# How far an object's center sits above the ground when it rests there.
RESTING_HEIGHT = {"ball": BALL_RADIUS, "box": BOX_HALF, "cup": CUP_HALF[1]}

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
        c.disk(center, BALL_RADIUS * s, color, EID["ball"])
    elif kind == "box":
        c.rect(center, BOX_HALF * s, BOX_HALF * s, color, EID["box"])
    elif kind == "cup":
        c.rect(center, CUP_HALF[0] * s, CUP_HALF[1] * s, color, EID["cup"])
    elif kind == "chair":
        x, y = center  # y: seat height
        brown = (0.45, 0.3, 0.15)
        back = x - 8 * s * look.facing
        seat, leg = CHAIR_WIDTH[0] * s, CHAIR_WIDTH[1] * s
        c.segment((x - 8 * s, y), (x + 8 * s, y), seat, brown, EID["chair"])
        c.segment((back, y), (back, y - 16 * s), seat, brown, EID["chair"])
        for lx in (x - 7 * s, x + 7 * s):
            c.segment((lx, y), (lx, look.ground), leg, brown, EID["chair"])


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
    limb = LIMB_WIDTH * s
    # Back limbs in a darker shade, then torso and head, then front limbs.
    c.segment(j["hip"], j["knee_b"], limb, dark, EID["leg"])
    c.segment(j["knee_b"], j["ankle_b"], limb, dark, EID["leg"])
    c.segment(j["ankle_b"], j["toe_b"], limb * 0.9, (0.15, 0.15, 0.15), EID["foot"])
    c.segment(j["neck"], j["elbow_b"], limb, dark, EID["arm"])
    c.segment(j["elbow_b"], j["wrist_b"], limb, dark, EID["arm"])
    c.disk(j["wrist_b"], HAND_RADIUS * s, (0.85, 0.65, 0.5), EID["hand"])
    c.segment(j["hip"], j["neck"], TORSO_WIDTH * s, body, EID["torso"])
    c.disk(j["head"], j["head_r"][0], (0.9, 0.72, 0.56), EID["head"])
    c.segment(j["hip"], j["knee_f"], limb, body, EID["leg"])
    c.segment(j["knee_f"], j["ankle_f"], limb, body, EID["leg"])
    c.segment(j["ankle_f"], j["toe_f"], limb * 0.9, (0.15, 0.15, 0.15), EID["foot"])
    c.segment(j["neck"], j["elbow_f"], limb, body, EID["arm"])
    c.segment(j["elbow_f"], j["wrist_f"], limb, body, EID["arm"])
    c.disk(j["wrist_f"], HAND_RADIUS * s, (0.85, 0.65, 0.5), EID["hand"])
    for obj in frame.objects:
        if obj.kind != "chair":
            draw_object(c, obj.kind, _object_center(obj, j, look), look, look.obj)
    return c


# ---- what a still frame shows ----------------------------------------------------------------


def describe_pose(frame: Frame, look: Look) -> list[str]:
    """Phrases for the body's posture in one frame: where hands, legs and torso are, never
    what the person is doing. Pretraining on them teaches the image tower to see posture."""
    p, s, f = frame.pose, look.scale, look.facing
    j = joints(p, frame.x, look)
    head_y, hip_y = j["head"][1], j["hip"][1]

    def height(w: np.ndarray) -> str:
        if w[1] < head_y - 2 * s:
            return "up"
        return "mid" if w[1] < hip_y - 7 * s else "down"

    def ahead(w: np.ndarray) -> float:
        return (w[0] - j["neck"][0]) * f / s

    wrists = (j["wrist_f"], j["wrist_b"])
    heights = [height(w) for w in wrists]
    phrases = []
    if heights.count("up") == 2:
        phrases.append("both arms raised above the head")
    elif heights.count("up") == 1:
        phrases.append("one arm raised above the head")
    elif ahead(wrists[0]) > 12 and ahead(wrists[1]) < -8:
        phrases.append("arms spread front and back")
    elif heights.count("mid") == 2 and min(ahead(w) for w in wrists) > 6:
        phrases.append("both arms held out in front")
    elif "mid" in heights:
        phrases.append("one arm held out in front")
    else:
        phrases.append("arms down by the sides")
    if np.linalg.norm(wrists[0] - wrists[1]) < 5 * s and "down" not in heights:
        phrases.append("hands together")
    if min(np.linalg.norm(w - j["head"]) for w in wrists) < 9 * s:
        phrases.append("a hand at the face")
    if max(p.el_f, p.el_b) > 1.2:
        phrases.append("a bent elbow")
    bent = (p.kn_f > 1.0) + (p.kn_b > 1.0)
    if bent == 2:
        phrases.append("both knees bent")
    elif p.kn_b > 1.2 and p.kn_f < 0.5:
        phrases.append("one foot lifted behind")
    elif p.hip_f > 0.9 and p.kn_f < 0.6:
        phrases.append("one leg raised forward")
    elif abs(p.hip_f - p.hip_b) > 0.6:
        phrases.append("legs apart in a long stride")
    elif abs(p.hip_f - p.hip_b) > 0.3:
        phrases.append("legs apart")
    else:
        phrases.append("legs straight together")
    if p.lift > 0.08:
        phrases.append("feet off the ground")
    if p.lean > 0.7:
        phrases.append("bent over at the waist")
    elif p.lean > 0.2:
        phrases.append("leaning forward")
    elif p.lean < -0.08:
        phrases.append("leaning back")
    if p.head_dy > 0.2:
        phrases.append("head tilted down")
    elif p.head_dy < -0.2:
        phrases.append("head tilted up")
    return phrases


def describe_objects(frame: Frame, look: Look) -> list[str]:
    """Where the clip's own objects are in one frame (held, in the air, on the ground)."""
    p, s = frame.pose, look.scale
    j = joints(p, frame.x, look)
    phrases = []
    for obj in frame.objects:
        c = _object_center(obj, j, look)
        if obj.kind == "chair":
            seated = p.hip_f > 1.0 and p.kn_f > 1.0
            phrases.append("a person seated on a chair" if seated else "a chair beside the person")
        elif obj.kind == "cup":
            near = np.linalg.norm(c - j["head"]) < 10 * s
            phrases.append("a cup at the mouth" if near else "a cup in one hand")
        elif obj.at is not None:
            if c[1] < j["head"][1]:
                phrases.append(f"a {obj.kind} held above the head")
            elif obj.at == "chest":
                phrases.append(f"a {obj.kind} held against the chest")
            else:
                phrases.append(f"a {obj.kind} in the hands")
        elif c[1] < look.ground - 12 * s:
            phrases.append(f"a {obj.kind} in the air")
        elif np.linalg.norm(c - j["toe_f"]) < 9 * s:
            phrases.append(f"a {obj.kind} at the foot")
        else:
            phrases.append(f"a {obj.kind} on the ground")
    return phrases
