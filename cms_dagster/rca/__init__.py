"""Root-cause ranking: a generic engine over any service graph, and a domain layer that ranks
(entity, incident kind) hypotheses for the CMS estate. Plain Python (numpy, pandas); no Dagster.

The dependency graph comes from the ontology (``cms_dagster.domain``: ``Ontology.dependency_edges()``)."""

from cms_dagster.domain.graph import dependency_closure
from cms_dagster.rca.engine import rank
from cms_dagster.rca.findings import Candidate, Evidence
from cms_dagster.rca.hypotheses import Hypothesis, rank_incident
from cms_dagster.rca.signatures import KINDS
from cms_dagster.rca.validate import RcaInputError, RcaWarning

__all__ = [
    "KINDS",
    "Candidate",
    "Evidence",
    "Hypothesis",
    "RcaInputError",
    "RcaWarning",
    "dependency_closure",
    "rank",
    "rank_incident",
]
