"""Mail-domain code the services and the operator CLI share: template rendering and the
templates table (router; `mailstream templates`), DKIM keys and signing (sender;
`mailstream tenants dns|apply`). It depends on nothing of a service."""
