"""The financial-operations ontology: asset classes, jobs and their sub-stages, feeds, resources, SLAs."""

from cms_dagster.domain.model import Feed, Job, Ontology, OntologyError, Resource, Stage, load_ontology

__all__ = ["Feed", "Job", "Ontology", "OntologyError", "Resource", "Stage", "load_ontology"]
