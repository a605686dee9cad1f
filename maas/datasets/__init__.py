"""Datasets: parsing uploads (CSV, Parquet, NPZ, JSONL), schema inference, built-ins and splits. Pure: no DB."""
