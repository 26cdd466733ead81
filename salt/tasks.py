"""Task specifications: languages, labels, hub identifiers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its languages (English first), label names and hub coordinates."""

    name: str
    languages: tuple[str, ...]
    labels: tuple[str, ...]
    under_resourced: tuple[str, ...]
    hub_id: str  # dataset id on the Hugging Face hub; the revision is a parameter (data.hub_revision)
    source_language: str = "en"

    @property
    def target_languages(self) -> tuple[str, ...]:
        """Evaluation languages other than the source language."""
        return tuple(lang for lang in self.languages if lang != self.source_language)

    def label_id(self, label: str) -> int:
        """Index of a label name; raises KeyError naming the allowed labels."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"unknown label {label!r} for {self.name}; allowed: {self.labels}") from None


XNLI = TaskSpec(
    name="xnli",
    languages=("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur"),
    labels=("entailment", "neutral", "contradiction"),
    under_resourced=("sw", "ur", "hi", "th"),
    hub_id="facebook/xnli",
)

PAWSX = TaskSpec(
    name="pawsx",
    languages=("en", "de", "es", "fr", "ja", "ko", "zh"),
    labels=("0", "1"),
    under_resourced=(),
    hub_id="google-research-datasets/paws-x",
)

TASKS: dict[str, TaskSpec] = {t.name: t for t in (XNLI, PAWSX)}


def get_task(name: str) -> TaskSpec:
    """Look a task up by name with an error that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}") from None
