"""The invoice pool (发票池): invoice requests (开票申请), issued invoices and the receivables (应收)
they leave on credit."""
