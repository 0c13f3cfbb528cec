"""A small federated city for tests: five Strawberry subgraphs and their supergraph.

residents, districts, parking, jobs and ratings exercise keys (simple and compound),
@requires, @provides, @shareable, @override, @external, @interfaceObject, interfaces and unions
across subgraphs, and mutations. The supergraph is composed by hand so that the engine's tests
do not depend on our own composition.
"""
