//! A normalised noncompliance finding (filled in by the event-intake work).
