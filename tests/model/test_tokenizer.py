"""The torch-free tokenizer of the ONNX backend gives open_clip's tokens."""

import subprocess
import sys

import numpy as np

from model import catalog
from model.clip import tokenizer
from model.from_clip import INIT_LABEL_TEMPLATES
from model.tokenizer import BpeTokenizer, tokenizer_spec

ODD = [
    "", "   spaces   and\ttabs\n", "UPPER case Words", "café déjà vu", "emoji 🙂 and 中文",
    "numbers 1234567 and 3.14", "it's they're we'll I'd", "&amp; &lt;b&gt; html", "x" * 500,
    " ".join(["long"] * 100), "punctuation!!! ??? ... ---", "a\u00a0non-breaking space",
]  # fmt: skip


def test_tokens_equal_open_clips_on_labels_prompts_and_odd_text():
    reference = tokenizer("ALT-tiny")
    ours = BpeTokenizer(tokenizer_spec(reference))
    labels = [lbl for name in catalog.LABEL_SETS for lbl in catalog.label_set(name)]
    texts = [t.format(lbl) for lbl in labels[:300] for t in INIT_LABEL_TEMPLATES[:2]] + ODD
    np.testing.assert_array_equal(ours(texts), reference(texts).numpy())


def test_the_onnx_backend_needs_no_torch(tmp_path):
    """A process where torch and open_clip cannot be imported still tokenizes."""
    spec = tmp_path / "tokenizer.json"
    import json

    spec.write_text(json.dumps(tokenizer_spec(tokenizer("ALT-tiny"))))
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['open_clip'] = None\n"
        "from model.tokenizer import BpeTokenizer, tokenizer_spec\n"
        f"print(BpeTokenizer.load({str(spec)!r})(['a photo of a person surfing.']).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    expected = tokenizer("ALT-tiny")(["a photo of a person surfing."]).tolist()
    assert eval(out.stdout) == expected
