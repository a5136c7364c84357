"""The prediction service: one trained bundle behind a small FastAPI app (the Hitta thesis'
web application), predicting through the same code as batch scoring."""
