"""The knowledge base: verified question/SQL examples, readable by users, written by admins."""
