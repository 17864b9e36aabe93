"""Radiology vocabulary for the rule-based rewards (`enhanced_grounding`, the rule-based
`kg_jaccard` extractor): anatomical regions with importance weights, abnormalities with severity,
visual descriptors, negation and uncertainty cues.

Seed 000's enhanced medical reward (after arXiv 2503.03278, knowledge descriptions for abnormality
grounding) specifies 5 anatomical regions with importance weights (heart 1.0, lung 0.9, ...), 7
abnormality types with severity scores and visual descriptors (size, shape, density, location); the
seed gives only the first two weights, the others here are radgrpo's choice. Negation and
uncertainty follow RadGraph's entity types (OBS-DP present, OBS-DA absent, OBS-U uncertain).
"""

from __future__ import annotations

import re

ANATOMY_IMPORTANCE = {"heart": 1.0, "lung": 0.9, "mediastinum": 0.85, "pleura": 0.8, "bone": 0.6}
ANATOMY_SYNONYMS = {
    "heart": ("heart", "cardiac", "cardio", "ventricle", "atrium", "pericardial"),
    "lung": ("lung", "pulmonary", "lobe", "apex", "apical", "base", "basal", "hilum", "hilar", "parenchyma", "airspace"),
    "mediastinum": ("mediastinum", "mediastinal", "aorta", "aortic", "trachea", "tracheal"),
    "pleura": ("pleura", "pleural", "costophrenic", "fissure"),
    "bone": ("bone", "rib", "ribs", "clavicle", "spine", "vertebra", "vertebral", "osseous", "skeletal"),
}
ABNORMALITY_SEVERITY = {
    "pneumothorax": 1.0,
    "mass": 0.9,
    "consolidation": 0.8,
    "effusion": 0.7,
    "cardiomegaly": 0.7,
    "nodule": 0.6,
    "atelectasis": 0.5,
}
ABNORMALITY_SYNONYMS = {
    "pneumothorax": ("pneumothorax", "pneumothoraces"),
    "mass": ("mass", "masses", "tumor", "tumour", "neoplasm", "lesion"),
    "consolidation": ("consolidation", "pneumonia", "infiltrate", "infiltration", "opacity", "opacities", "airspace disease"),
    "effusion": ("effusion", "effusions", "fluid"),
    "cardiomegaly": ("cardiomegaly", "enlarged heart", "cardiac enlargement", "enlarged cardiac silhouette"),
    "nodule": ("nodule", "nodules", "nodular", "granuloma"),
    "atelectasis": ("atelectasis", "atelectatic", "collapse"),
}
DESCRIPTORS = {
    "size": ("small", "large", "tiny", "massive", "moderate", "mild", "severe", "cm", "mm", "enlarged"),
    "shape": ("round", "oval", "irregular", "linear", "nodular", "spiculated", "wedge", "patchy", "focal", "diffuse"),
    "density": ("dense", "opaque", "lucent", "lucency", "hazy", "ground glass", "calcified", "calcification", "radiopaque"),
    "location": ("upper", "lower", "middle", "left", "right", "bilateral", "apical", "basal", "central", "peripheral", "hilar", "lateral", "medial"),
}
NEGATION = ("no", "not", "without", "negative", "free", "absent", "resolved", "clear")
UNCERTAINTY = ("may", "might", "possible", "possibly", "probable", "likely", "suggest", "suggests", "suspicious", "cannot", "questionable", "versus", "vs")


def _alternation(terms) -> re.Pattern:
    ordered = sorted(set(terms), key=len, reverse=True)  # longest first: "enlarged heart" before "heart"
    return re.compile(r"\b(" + "|".join(re.escape(t) for t in ordered) + r")\b")


ANATOMY_RE = _alternation(t for syn in ANATOMY_SYNONYMS.values() for t in syn)
ABNORMALITY_RE = _alternation(t for syn in ABNORMALITY_SYNONYMS.values() for t in syn)
DESCRIPTOR_RE = _alternation(t for syn in DESCRIPTORS.values() for t in syn)
ANATOMY_OF = {t: region for region, syn in ANATOMY_SYNONYMS.items() for t in syn}
ABNORMALITY_OF = {t: kind for kind, syn in ABNORMALITY_SYNONYMS.items() for t in syn}
