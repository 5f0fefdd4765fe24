"""Labelled cases for the safety providers: (text, flagged?, categories expected when flagged).

Shared by the tests (every case must come out right) and bench/safety.py (precision and recall).
The negatives are chosen to look like positives to a careless pattern: numbers that fail their
check digit, dates, order numbers, prose about passwords.
"""

from __future__ import annotations

PII: list[tuple[str, bool, set[str]]] = [
    ("Please write to maria.gonzalez@example.org about the invoice.", True, {"email"}),
    ("Contact: j.smith+billing@mail.example.co.uk", True, {"email"}),
    ("Call me on +44 20 7946 0958 after six.", True, {"phone_number"}),
    ("My number is (555) 123-4567, text first.", True, {"phone_number"}),
    ("Ring the desk at +1 415 555 0132.", True, {"phone_number"}),
    ("Card: 4111 1111 1111 1111, expiry 12/27.", True, {"payment_card"}),
    ("Charge 5555-5555-5555-4444 for the order.", True, {"payment_card"}),
    ("Pay to IBAN DE89 3704 0044 0532 0130 00 by Friday.", True, {"iban"}),
    ("My IBAN is GB82WEST12345698765432.", True, {"iban"}),
    ("SSN 123-45-6789 is on the form.", True, {"national_id"}),
    ("National insurance number: AB 12 34 56 C", True, {"national_id"}),
    ("Use the key AKIAIOSFODNN7EXAMPLE for the bucket.", True, {"secret"}),
    ("export OPENAI_API_KEY=sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", True, {"secret"}),
    ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a in the CI settings", True, {"secret"}),
    ("password = 'correct-horse-battery'", True, {"secret"}),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----", True, {"secret"}),
    ("Email ops@example.com or call +33 1 42 68 53 00.", True, {"email", "phone_number"}),
    ("The meeting moved to 2024-05-01 at 10:30 in room 101.", False, set()),
    ("Order 4111 1111 1111 1112 shipped (not a valid card number).", False, set()),
    ("Our revenue grew 12.5% to 3,400,000 in 2023.", False, set()),
    ("Choose a strong password and never share it.", False, set()),
    ("The IBAN format starts with a country code, like DE or FR.", False, set()),
    ("Version 1.2.3 fixed issue 4567 reported on 12/11/2024.", False, set()),
    ("The recipe needs 250 g flour, 2 eggs and 100 ml milk.", False, set()),
    ("Reach the team through the contact form on our website.", False, set()),
    ("The train leaves at 07:45 from platform 9 and arrives at 11:20.", False, set()),
]
