"""Identity verification for remote account opening: ID card OCR, face verification 2.0 and a
same-name bank-card check, each attempt-limited and recorded as evidence."""
