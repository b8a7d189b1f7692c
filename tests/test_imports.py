"""The package's import graph: no cycles, and the trainer and the Caffe reader imported on first use only."""

import ast
import pathlib

from _training_helpers import run_python

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent / "keras_fcn"
ROOT = "keras_fcn"
# Imports made inside a function, on first use, so that importing the module does not load what they need.
LAZY = {
    # `keras_fcn.models` resolves zoo names through `keras_fcn.zoo`; building an entry's model needs the builders.
    ("keras_fcn.zoo", "keras_fcn.zoo.architectures"),
    # The Caffe reader is needed only to convert a caffemodel.
    ("keras_fcn.zoo", "keras_fcn.caffe"),
}


def module_names(package_dir=PACKAGE_DIR):
    """`{dotted module name: source path}` of every module of the package."""
    names = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imports(tree):
    """`(node, inside a function)` for every import statement of a module's syntax tree."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def _targets(node, module, is_package, modules):
    """The package modules an import statement imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
    if base not in modules:
        return []
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def import_graph(modules):
    """`(edges at import time, imports inside functions)` between the package's modules.

    Importing `a.b.c` also runs the `__init__` of packages `a.b` unless the
    importer is inside `a.b` already; the root package, always imported
    first, counts only when imported explicitly.
    """
    edges, lazy = {name: set() for name in modules}, set()
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node, in_function in _imports(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, module, is_package, modules):
                parts = target.split(".")
                parents = [".".join(parts[:i]) for i in range(2, len(parts))]
                needed = [target] + [p for p in parents if not (module == p or module.startswith(p + "."))]
                for other in needed:
                    if other == module:
                        continue
                    if in_function:
                        lazy.add((module, other))
                    else:
                        edges[module].add(other)
    return edges, lazy


def find_cycle(edges):
    """One cycle of the graph as a list of names (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if state.get(other) == "open":
                return stack[stack.index(other) :] + [other]
            if other not in state:
                cycle = visit(other)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_one_that_exists():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_sees_package_inits_and_function_level_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg import a\n")
    (package / "a.py").write_text("from pkg.sub.b import thing\n")
    (package / "sub" / "__init__.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg import a\n")
    edges, lazy = import_graph(module_names(package))
    assert edges["pkg.a"] == {"pkg.sub.b", "pkg.sub"}
    assert edges["pkg.sub"] == {"pkg.sub.b"}
    assert lazy == {("pkg.sub.b", "pkg.a")}


def test_the_package_has_no_import_cycle():
    edges, _ = import_graph(module_names())
    assert "keras_fcn.models" in edges and "keras_fcn.training.trainer" in edges
    assert find_cycle(edges) is None


def test_only_the_declared_lazy_imports_happen_inside_functions():
    _, lazy = import_graph(module_names())
    assert lazy <= LAZY, f"undeclared imports inside functions: {sorted(lazy - LAZY)}"


def test_importing_the_package_leaves_the_trainer_and_caffe_reader_for_first_use():
    code = (
        "import sys, keras_fcn\n"
        "print(sorted(m for m in ('keras_fcn.caffe', 'keras_fcn.training', 'keras_fcn.zoo.architectures') "
        "if m in sys.modules))\n"
        "from keras_fcn import train\n"
        "print(train is keras_fcn.training.train, callable(keras_fcn.caffe.read_caffemodel))\n"
    )
    result = run_python(["-c", code], timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["[]", "True True"]
