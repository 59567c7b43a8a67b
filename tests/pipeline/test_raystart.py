"""The Ray start-up helper shared by builds and training: movid's code goes to a cluster as folder paths that
pickle (Ray Client sends the runtime env pickled), the same five packages (the code and its prompts and presets) for both callers."""

import pickle
from pathlib import Path

import configs
import model
import pipeline
import schemas
import stages
from pipeline.raystart import CODE_PACKAGES, code_paths


def test_code_is_shipped_as_picklable_folder_paths():
    paths = code_paths()
    assert paths == [str(Path(p.__file__).parent.resolve()) for p in (schemas, stages, pipeline, model, configs)]
    assert all(Path(p, "__init__.py").is_file() for p in paths)
    assert pickle.loads(pickle.dumps({"py_modules": paths})) == {"py_modules": paths}
    assert CODE_PACKAGES == ("schemas", "stages", "pipeline", "model", "configs")
