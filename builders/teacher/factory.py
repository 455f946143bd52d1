"""`make_teacher`: the teacher class a config asks for. Its own module because it names every
class: the question-answering teacher (qa_teacher.py) and the token-level one (token_teacher.py)
are subclasses of the one in model.py."""
from __future__ import annotations

from .config import TeacherConfig
from .model import Teacher
from .qa_teacher import QATeacher
from .token_teacher import AUTO_CLASSES, TokenTeacher

__all__ = ["make_teacher"]


def make_teacher(config: TeacherConfig) -> Teacher:
    """The teacher for a config: a question-answering one for head "span", a token-level one
    (masked or causal LM) for heads "masked_lm" / "causal_lm", else `Teacher`."""
    if config.head == "span":
        return QATeacher(config)
    if config.head in AUTO_CLASSES:
        return TokenTeacher(config)
    return Teacher(config)
