"""Convex values: the value model (`model`), its JSON encodings (`json`), the validators
(`validators`, `v.*`) and document ids (`ids`).

Each module imports only the ones before it (model ← json ← validators; ids stands alone),
so nothing here runs a cycle at import. This package re-exports the public names.
"""

from owlat.runtime.values.json import (
    convex_to_clean_json,
    convex_to_json,
    decode_stored,
    dumps,
    encode_stored,
    json_to_convex,
    loads,
)
from owlat.runtime.values.model import (
    MAX_ARRAY_LENGTH,
    MAX_FIELD_NAME_LENGTH,
    MAX_NESTING,
    MAX_OBJECT_FIELDS,
    normalize_value,
    type_name,
    value_size,
)
from owlat.runtime.values.validators import (
    AnyValidator,
    ArrayValidator,
    BooleanValidator,
    BytesValidator,
    FloatValidator,
    IdResolver,
    IdValidator,
    Int64Validator,
    LiteralValidator,
    NullValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    StringValidator,
    UnionValidator,
    Validator,
    v,
)

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_FIELD_NAME_LENGTH",
    "MAX_NESTING",
    "MAX_OBJECT_FIELDS",
    "AnyValidator",
    "ArrayValidator",
    "BooleanValidator",
    "BytesValidator",
    "FloatValidator",
    "IdResolver",
    "IdValidator",
    "Int64Validator",
    "LiteralValidator",
    "NullValidator",
    "ObjectValidator",
    "OptionalValidator",
    "RecordValidator",
    "StringValidator",
    "UnionValidator",
    "Validator",
    "convex_to_clean_json",
    "convex_to_json",
    "decode_stored",
    "dumps",
    "encode_stored",
    "json_to_convex",
    "loads",
    "normalize_value",
    "type_name",
    "v",
    "value_size",
]
