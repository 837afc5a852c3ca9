"""Default detection rules, editable (or deactivatable) in the admin."""

from django.db import migrations

RULES = [
    {
        "name": "Prompt injection attempt",
        "description": "User tries to override the bot's instructions or extract its prompt.",
        "keywords": [
            "ignore previous instructions", "ignore all previous instructions", "ignore your instructions",
            "disregard your instructions", "disregard previous instructions", "reveal your system prompt",
            "show me your system prompt", "developer mode", "jailbreak", "do anything now",
        ],
        "regex": r"\b(?:ignore|forget|disregard)\b.{0,30}\b(?:instructions|rules|prompt)\b",
        "applies_to": "user", "points": 45, "severity": "high",
    },
    {
        "name": "Secret leaked in answer",
        "description": "The bot's answer contains something shaped like an API key or private key.",
        "keywords": [],
        "regex": r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}|\bxox[abposr]-[A-Za-z0-9-]{10,}|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----",
        "applies_to": "bot", "points": 80, "severity": "critical",
    },
    {
        "name": "Card number in answer",
        "description": "The bot's answer contains a 13–19 digit card-like number.",
        "keywords": [],
        "regex": r"\b(?:\d[ -]?){12,18}\d\b",
        "applies_to": "bot", "points": 60, "severity": "high",
    },
    {
        "name": "Self-harm",
        "description": "The user mentions self-harm or suicide: a human should look.",
        "keywords": [
            "kill myself", "killing myself", "suicide", "suicidal", "end my life", "hurt myself",
            "self harm", "self-harm", "want to die",
        ],
        "regex": "",
        "applies_to": "user", "points": 75, "severity": "critical",
    },
    {
        "name": "Profanity",
        "description": "Swearing by the user (frustration) or, worse, by the bot.",
        "keywords": ["fuck", "fucking", "shit", "bullshit", "asshole", "bitch", "bastard", "crap", "damn you"],
        "regex": "",
        "applies_to": "both", "points": 20, "severity": "low",
    },
    {
        "name": "Frustrated user",
        "description": "Signals that the user is not getting help.",
        "keywords": [
            "useless", "not helpful", "talk to a human", "speak to a human", "real person", "speak to a manager",
            "this is ridiculous", "you are wrong", "that's wrong", "doesn't answer",
        ],
        "regex": "",
        "applies_to": "user", "points": 25, "severity": "medium",
    },
]


def seed(apps, schema_editor):
    DetectionRule = apps.get_model("risk", "DetectionRule")
    for rule in RULES:
        DetectionRule.objects.get_or_create(name=rule["name"], chatbot=None, defaults=rule)


def unseed(apps, schema_editor):
    DetectionRule = apps.get_model("risk", "DetectionRule")
    DetectionRule.objects.filter(chatbot=None, name__in=[r["name"] for r in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("risk", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
