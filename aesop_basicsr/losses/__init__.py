from aesop_basicsr.utils.scan import import_modules_with_suffix

# importing each '*_loss.py' file registers its classes into BasicSR's registries
_modules = import_modules_with_suffix(__file__, __name__, '_loss.py')
