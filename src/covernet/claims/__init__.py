"""Claims: report, stages, documents, adjudication, payouts, statutory clocks."""
