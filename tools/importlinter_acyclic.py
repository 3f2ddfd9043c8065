"""An import-linter contract type: no import cycle among a package's modules.

import-linter's own ``acyclic_siblings`` contract looks for cycles between the
children of a package, so a cycle through a package's ``__init__`` (the package
imports one of its modules, which imports the package back) goes unseen. This one
works on modules: every module of the listed packages, the packages themselves
included, is a node; every direct import between two of them is an edge, those
under ``if TYPE_CHECKING:`` too (grimp counts them unless the session option
``exclude_type_checking_imports`` is set). Any strongly connected component of
more than one module breaks the contract, and the report names its modules and one
cycle through them with the line of each import.

Registered in pyproject.toml under ``[tool.importlinter]``::

    contract_types = ["acyclic: importlinter_acyclic.AcyclicContract"]

with this folder on PYTHONPATH when ``lint-imports`` runs (the Makefile's lint).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from grimp import ImportGraph
from importlinter.application import contract_utils, output
from importlinter.application.contract_utils import AlertLevel
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


@dataclass(frozen=True, order=True)
class Cycle:
    modules: tuple[str, ...]
    # (importer, imported, the importer's line numbers of that import), start to start.
    links: tuple[tuple[str, str, tuple[int, ...]], ...]


class AcyclicContract(Contract):
    """Options: ``packages`` (the modules to check, with all their descendants) and
    ``ignore_imports`` (import expressions taken out of the graph first, optional)."""

    type_name = "acyclic"

    packages = fields.SetField(subfield=fields.ModuleField())
    ignore_imports = fields.SetField(subfield=fields.ImportExpressionField(), required=False)
    unmatched_ignore_imports_alerting = fields.EnumField(AlertLevel, default=AlertLevel.ERROR)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        removal = contract_utils.remove_ignored_imports_and_report(
            graph=graph,
            ignore_imports=self.ignore_imports,  # type: ignore[arg-type]
            unmatched_alerting=self.unmatched_ignore_imports_alerting,  # type: ignore[arg-type]
        )
        modules: set[str] = set()
        for package in self.packages:  # type: ignore[attr-defined]
            modules.add(package.name)
            modules |= graph.find_descendants(package.name)
        edges = {
            module: sorted(graph.find_modules_directly_imported_by(module) & modules)
            for module in sorted(modules)
        }
        cycles = []
        for component in strongly_connected_components(edges):
            if len(component) > 1:
                path = shortest_cycle(min(component), edges, set(component))
                links = tuple(
                    (importer, imported, _lines(graph, importer, imported))
                    for importer, imported in pairwise(path)
                )
                cycles.append(Cycle(tuple(sorted(component)), links))
        cycles.sort()
        return ContractCheck(
            kept=not cycles,
            warnings=list(removal.warnings),
            ignored_import_count=removal.ignored_import_count,
            metadata={"cycles": cycles},
        )

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            modules = cycle.modules
            output.print_error(f"Import cycle among {len(modules)} modules: {', '.join(modules)}")
            output.new_line()
            output.print_error("One cycle through them:", bold=False)
            for importer, imported, lines in cycle.links:
                where = f" (l. {', '.join(map(str, lines))})" if lines else ""
                output.indent_cursor()
                output.print_error(f"{importer} -> {imported}{where}", bold=False)
            output.new_line()


def _lines(graph: ImportGraph, importer: str, imported: str) -> tuple[int, ...]:
    details = graph.get_import_details(importer=importer, imported=imported)
    return tuple(sorted({detail["line_number"] for detail in details}))


def strongly_connected_components(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; ``edges`` maps every node to its successors."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(edges[root]))]
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(edges[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def shortest_cycle(start: str, edges: Mapping[str, Iterable[str]], within: set[str]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``within`` (one strongly
    connected component, so there is one), as a list of modules ending with ``start``."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in edges[node]:
            if successor not in within:
                continue
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if successor not in previous:
                previous[successor] = node
                queue.append(successor)
    raise ValueError(f"{start} is on no cycle within {sorted(within)}")
