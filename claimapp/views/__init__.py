"""The web application's views, one blueprint per concern: auth (log in and out), receipts
(search and one receipt, as pages and as JSON) and audit (the audit log)."""
