"""One short, synthetic worked example per built-in schema, shown to the model before the document.

A 0.5B model leaves most fields null zero-shot; one demonstration lifts it to filling them. The
examples are invented (no real people or filings) and deliberately unlike the evaluation data, so a
copied value never grounds in a real document and is flagged.
"""

from __future__ import annotations

from typing import Any

NDA_DOCUMENT = """MUTUAL CONFIDENTIALITY AGREEMENT

This Mutual Confidentiality Agreement (the "Agreement") is entered into as of the 2nd day of March, 1999 \
by and between Orchard Valley Instruments, Inc., a Delaware corporation (the "Company"), and Tomasz \
Wierzbicki, M.D., an individual residing in Burlington ("Recipient").

RECITALS
The Company wishes to disclose certain Confidential Information to Recipient.

1. Recipient shall hold all Confidential Information in strict confidence.
2. Term. This Agreement shall remain in effect for a period of five (5) years from the date hereof.
3. Governing Law. This Agreement shall be governed by the laws of the State of Vermont.

ORCHARD VALLEY INSTRUMENTS, INC.
By: Helen Marsh, President                  TOMASZ WIERZBICKI, M.D."""

NDA_RECORD: dict[str, Any] = {
    "parties": ["Orchard Valley Instruments, Inc.", "Tomasz Wierzbicki"],
    "effective_date": "1999-03-02",
    "jurisdiction": "Vermont",
    "term": "five (5) years",
}

CONTRACT_DOCUMENT = """SUPPLY AGREEMENT

This Supply Agreement is made effective June 1, 2004 between Halvorsen Marine Coatings AS ("Supplier") \
and Brightwater Boatworks LLC ("Buyer").
1. Term. The initial term is three years; it renews automatically for one-year periods unless either \
party gives 90 days' notice.
2. Payment. Buyer shall pay each invoice within 45 days.
3. Termination. Either party may terminate for material breach uncured within 30 days of notice.
4. Confidentiality. Each party shall keep the other's pricing confidential.
5. This Agreement is governed by the laws of the State of Maine."""

CONTRACT_RECORD: dict[str, Any] = {
    "parties": [
        {"name": "Halvorsen Marine Coatings AS", "role": "Supplier"},
        {"name": "Brightwater Boatworks LLC", "role": "Buyer"},
    ],
    "effective_date": "2004-06-01",
    "term": "three years",
    "governing_law": "State of Maine",
    "termination": "Either party may terminate for material breach uncured within 30 days of notice.",
    "payment_terms": "Buyer shall pay each invoice within 45 days.",
    "confidentiality": "Each party shall keep the other's pricing confidential.",
    "renewal": "renews automatically for one-year periods unless either party gives 90 days' notice",
}

CLINICAL_DOCUMENT = """CHIEF COMPLAINT

Sore throat.

HISTORY OF PRESENT ILLNESS

Ingrid Solberg is a 34-year-old woman with a history of migraines who presents with a sore throat for \
4 days. Temperature 100.9 F, blood pressure 118/76, heart rate 92.
Medications: sumatriptan 50 mg by mouth as needed for migraine. Allergic to sulfa drugs.

ASSESSMENT AND PLAN

Streptococcal pharyngitis, confirmed by rapid strep test. Start amoxicillin 500 mg by mouth twice daily \
for 10 days. Return if not improving in 3 days."""

CLINICAL_RECORD: dict[str, Any] = {
    "patient_age": 34,
    "patient_sex": "female",
    "chief_complaint": "Sore throat",
    "diagnoses": ["migraines", "Streptococcal pharyngitis"],
    "medications": [
        {"name": "sumatriptan", "dose": "50 mg", "route": "by mouth", "frequency": "as needed"},
        {"name": "amoxicillin", "dose": "500 mg", "route": "by mouth", "frequency": "twice daily"},
    ],
    "allergies": ["sulfa drugs"],
    "vitals": {
        "blood_pressure": "118/76",
        "heart_rate": "92",
        "temperature": "100.9 F",
        "respiratory_rate": None,
        "oxygen_saturation": None,
    },
    "procedures": ["rapid strep test"],
    "follow_up": "Return if not improving in 3 days",
}
