"""`make_teacher`: the teacher class a config asks for. Its own module because it names both
classes: the question-answering teacher (qa_teacher.py) is a subclass of the one in model.py."""
from __future__ import annotations

from .config import TeacherConfig
from .model import Teacher
from .qa_teacher import QATeacher

__all__ = ["make_teacher"]


def make_teacher(config: TeacherConfig) -> Teacher:
    """The teacher for a config: a question-answering one for head "span", else `Teacher`."""
    if config.head == "span":
        return QATeacher(config)
    return Teacher(config)
