"""Root-cause ranking: a generic engine over any service graph, and a domain layer that ranks
(entity, incident kind) hypotheses for the CMS estate. Plain Python (numpy, pandas); no Dagster."""

from cms_dagster.rca.domain import (
    KINDS,
    Hypothesis,
    max_connections_from_ontology,
    ontology_graph,
    rank_incident,
)
from cms_dagster.rca.engine import Candidate, Evidence, dependency_closure, rank
from cms_dagster.rca.validate import RcaInputError, RcaWarning

__all__ = [
    "KINDS",
    "Candidate",
    "Evidence",
    "Hypothesis",
    "RcaInputError",
    "RcaWarning",
    "dependency_closure",
    "max_connections_from_ontology",
    "ontology_graph",
    "rank",
    "rank_incident",
]
