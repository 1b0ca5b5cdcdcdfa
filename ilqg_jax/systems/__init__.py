"""Ready-made systems: dynamics, costs and problems, one module per system."""
