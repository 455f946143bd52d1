"""No library module opens a file with a loader that can run code from it (docs/errors.md,
"Files you receive"): no pickle or joblib loading, torch.load only with weights_only=True
written out, numpy without allow_pickle=True, YAML through safe_load, no remote code."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = ("augment", "builders", "distill_train", "pipelines", "taskdata", "autodistiller",
           "distiller")
UNSAFE = {
    "pickle or joblib load": re.compile(r"joblib\.load|pickle\.loads?\(|cloudpickle\.load|"
                                        r"dill\.load|pd\.read_pickle|marshal\.load"),
    "weights_only=False": re.compile(r"weights_only\s*=\s*False"),
    "torch.load without weights_only=True": re.compile(
        r"torch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load (use yaml.safe_load)": re.compile(r"yaml\.(unsafe_|full_)?load\("),
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "eval/exec of text": re.compile(r"(?<![.\w])(eval|exec)\("),
}


def _sources():
    for package in LIBRARY:
        for folder, _, names in os.walk(os.path.join(ROOT, package)):
            for name in names:
                if name.endswith(".py"):
                    yield os.path.join(folder, name)


@pytest.mark.parametrize("what", sorted(UNSAFE))
def test_no_unsafe_loader_in_the_library(what):
    found = []
    for path in _sources():
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        found += [f"{os.path.relpath(path, ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
                  for m in UNSAFE[what].finditer(text)]
    assert not found, f"{what} in {found}"


def test_the_patterns_do_match_unsafe_code():
    """The checks above can fail: each pattern matches the code it forbids."""
    samples = {"pickle or joblib load": "m = joblib.load(path)",
               "weights_only=False": "torch.load(p, weights_only = False)",
               "torch.load without weights_only=True": "torch.load(path, map_location='cpu')",
               "allow_pickle=True": "np.load(p, allow_pickle=True)",
               "yaml.load (use yaml.safe_load)": "yaml.load(fh, Loader=yaml.Loader)",
               "trust_remote_code=True": "from_pretrained(p, trust_remote_code=True)",
               "eval/exec of text": "value = eval(text)"}
    assert samples.keys() == UNSAFE.keys()
    for what, code in samples.items():
        assert UNSAFE[what].search(code), what
    assert not UNSAFE["torch.load without weights_only=True"].search(
        "torch.load(path, map_location='cpu', weights_only=True)")
    assert not UNSAFE["eval/exec of text"].search("model.eval()")
