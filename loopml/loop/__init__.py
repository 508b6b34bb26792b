"""The closed loop: monitor -> retrain -> challenger -> compare -> shadow -> promote."""
