"""Monitoring: drift, data quality and performance of served models; alert rules; reports."""
