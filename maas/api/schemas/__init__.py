"""Wire schemas: XCreate / XUpdate / XPublic / XList."""
