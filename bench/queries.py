"""The operations the benchmarks send."""

HEAVY = """fragment User on User { id username name }
fragment Review on Review { id body }
fragment Product on Product { inStock name price shippingEstimate upc weight }
query TestQuery {
  users { ...User reviews { ...Review product { ...Product reviews { ...Review author { ...User reviews { ...Review product { ...Product } } } } } } }
  topProducts { ...Product reviews { ...Review author { ...User reviews { ...Review product { ...Product } } } } }
}"""

SMALL = "query Me { me { id name } }"
# What a gateway sends the accounts subgraph for SMALL: the direct call it is compared with.
SMALL_DIRECT = "query Me__accounts__0 {\n  me {\n    id\n    name\n  }\n}"
