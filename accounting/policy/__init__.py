"""Shared policy every flow may consult: who may do what (access), frozen accounts and KYC
(standing), and the audit log."""
