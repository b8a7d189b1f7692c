"""The package uses public Keras and TensorFlow only: no `keras.src`, no private attribute of their objects.

Read from the package's source (its syntax tree) and its classes:

- no import of, or attribute path through, a private module (`keras.src`,
  `tensorflow.python`, `tf.__internal__`, ...), and no `_name` imported
  from outside the package;
- no `obj._name` (nor `getattr(obj, "_name")`) on anything but `self` or
  `cls`;
- `self._name` only for a name the class itself (or a package class it
  derives from) defines or assigns, that no Keras or TensorFlow base class
  defines or uses (`self._name` in its source): neither reading nor
  overriding a base's private member.

What this cannot see: a private attribute reached through a variable that
holds `self` under another name.
"""

import ast
import importlib
import inspect
import pathlib
import pkgutil
import re

import pytest

import keras_fcn

pytestmark = pytest.mark.floor

PACKAGE = pathlib.Path(keras_fcn.__file__).parent
PRIVATE_PATH = re.compile(r"\b(keras\.src|keras\._tf_keras|tensorflow\.python|tf\.python|tensorflow\.core)\b|__internal__")


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _parsed(module, root):
    path = pathlib.Path(module.__file__)
    return str(path.relative_to(root)), ast.parse(path.read_text(encoding="utf-8")), module


def _modules():
    """(path relative to the package, syntax tree, module) of every module of the package but `__main__`."""
    names = [info.name for info in pkgutil.walk_packages([str(PACKAGE)], prefix="keras_fcn.")]
    modules = [keras_fcn] + [importlib.import_module(name) for name in names if not name.endswith("__main__")]
    return [_parsed(module, PACKAGE) for module in modules]


def _defined(class_node):
    """Names a class statement defines: methods, class attributes and `self.<name> = ...` in its methods."""
    names = set()
    for node in ast.walk(class_node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and ast.unparse(node.value) == "self":
            names.add(node.attr)
    return names


def _foreign_bases(cls):
    return [base for base in cls.__mro__[1:] if base is not object and not base.__module__.startswith("keras_fcn")]


def _used_by_foreign_base(cls, name):
    """Whether a Keras/TensorFlow (or other non-package) base class defines `name` or uses `self.<name>`."""
    for base in _foreign_bases(cls):
        if name in vars(base):
            return True
        try:
            source = inspect.getsource(base)
        except (OSError, TypeError):
            continue
        if re.search(rf"\bself\.{re.escape(name)}\b", source):
            return True
    return False


def _violations(modules):
    """(path, line, name, why) of each private use in `modules`, as `_modules` gives them."""
    found = []
    for path, tree, module in modules:
        classes = {}

        def visit(node, owner):
            if isinstance(node, ast.ClassDef):
                cls = getattr(module, node.name, None) if owner is None else None
                names = _defined(node)
                if inspect.isclass(cls):
                    for base in cls.__mro__[1:]:
                        if base.__module__.startswith("keras_fcn") and base.__name__ in classes:
                            names |= classes[base.__name__][1]
                    for name in vars(cls):
                        if _is_private(name) and _used_by_foreign_base(cls, name):
                            found.append((path, node.lineno, name, f"class {node.name} overrides a base's private"))
                classes[node.name] = (cls, names)
                owner = (cls, names)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in modules:
                    if PRIVATE_PATH.search(name):
                        found.append((path, node.lineno, name, "import of a private module"))
                if isinstance(node, ast.ImportFrom) and node.level == 0 and not (node.module or "").startswith("keras_fcn"):
                    for alias in node.names:
                        if _is_private(alias.name):
                            found.append((path, node.lineno, alias.name, f"private name imported from {node.module}"))
            if isinstance(node, ast.Attribute):
                if PRIVATE_PATH.search(ast.unparse(node)) and not PRIVATE_PATH.search(ast.unparse(node.value)):
                    found.append((path, node.lineno, ast.unparse(node), "attribute path through a private module"))
                if _is_private(node.attr):
                    base = ast.unparse(node.value)
                    if base not in ("self", "cls"):
                        found.append((path, node.lineno, node.attr, f"private attribute of {base}"))
                    elif owner is None or node.attr not in owner[1]:
                        found.append((path, node.lineno, node.attr, "private attribute the class does not define"))
                    elif owner[0] is not None and _used_by_foreign_base(owner[0], node.attr):
                        found.append((path, node.lineno, node.attr, "private attribute of a Keras/TensorFlow base"))
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _is_private(node.args[1].value)
            ):
                found.append((path, node.lineno, node.args[1].value, f"private attribute through {node.func.id}"))
            for child in ast.iter_child_nodes(node):
                visit(child, owner)

        visit(tree, None)
    return found


def test_no_private_keras_or_tensorflow_api():
    found = _violations(_modules())
    assert not found, "\n".join(f"keras_fcn/{path}:{line}: {name} ({why})" for path, line, name, why in found)


PROBE = """
import keras


def imports():
    from keras.src.losses.loss import scale_loss_for_distribution
    from keras.callbacks import _private_name


def reads(model, tensor):
    return model._initial_epoch, tensor._keras_history, hasattr(model, "_run_through_graph"), keras.src


class Backup(keras.callbacks.BackupAndRestore):
    def _save_model(self):
        return self._training_metadata_path


class Own:
    def __init__(self):
        self._entries = {}

    def read(self):
        return self._entries, self._helper()

    def _helper(self):
        return None


class Logger(keras.callbacks.CSVLogger):
    def on_epoch_begin(self, epoch, logs=None):
        self._started = True
        return self._started, self._own

    def _own(self):
        return self.sep
"""


def test_the_check_sees_each_kind_of_private_use(tmp_path, monkeypatch):
    """It flags the private uses this package had (losses, callbacks, convolutionalize) and allows a class's own."""
    package = tmp_path / "keras_fcn_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("keras_fcn_probe.probe")
    flagged = {(line, name) for _, line, name, _ in _violations([_parsed(probe, package)])}
    assert flagged == {
        (6, "keras.src.losses.loss"),
        (7, "_private_name"),
        (11, "_initial_epoch"),
        (11, "_keras_history"),
        (11, "_run_through_graph"),
        (11, "keras.src"),
        (14, "_save_model"),
        (16, "_training_metadata_path"),
    }
