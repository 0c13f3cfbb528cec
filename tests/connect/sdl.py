"""The parking partner's connector SDL, against the loopback API of conftest.py."""

from __future__ import annotations

HEAD = """extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])
  @link(url: "https://specs.apollo.dev/connect/v0.1", import: ["@connect", "@source"])
  @source(name: "parking", http: { baseURL: "BASE", headers: [{ name: "x-partner-client", value: "citygate" }] })
"""

PARKING = (
    HEAD
    + '''
type Query {
  spots(district: String, limit: Int): [Spot]
    @connect(
      source: "parking"
      http: { GET: "/spots?district={$args.district}&limit={$args.limit}" }
      selection: """
      $.results {
        id
        name: label
        capacity: places.total
        free: places.free
        full: places.free->eq(0)
        tags
        firstTag: tags->first
        tagCount: tags->size
        kind: kind->match(["UG", "UNDERGROUND"], ["ST", "STREET"], [@, "OTHER"])
        district: { code: district }
        origin: $("parking-api")
      }
      """
    )
  spotCount(district: String): Int
    @connect(source: "parking", http: { GET: "/spots?district={$args.district}" }, selection: "$.total")
  districts(codes: [ID!]!): [District]
    @connect(source: "parking", http: { GET: "/districts?codes={$args.codes->joinNotNull(',')}" }, selection: "$.items { code name }")
}

type Mutation {
  rent(spot: ID!, hours: Int!): Rental
    @connect(
      source: "parking"
      http: { POST: "/rentals", body: "spot: $args.spot duration: { hours: $args.hours }" }
      selection: "$.rental { id spot: { id: spot } hours: duration.hours }"
    )
  endRental(id: ID!): Boolean
    @connect(source: "parking", http: { DELETE: "/rentals/{$args.id}" }, selection: "$(true)")
}

type Spot
  @connect(
    source: "parking"
    http: { GET: "/spots/{$this.id}" }
    selection: """
    id name: label capacity: places.total free: places.free full: places.free->eq(0) tags
    firstTag: tags->first tagCount: tags->size
    kind: kind->match(["UG", "UNDERGROUND"], ["ST", "STREET"], [@, "OTHER"])
    district: { code: district } origin: $("parking-api")
    """
  ) {
  id: ID!
  name: String
  capacity: Int
  free: Int
  full: Boolean
  tags: [String]
  firstTag: String
  tagCount: Int
  kind: String
  district: District
  origin: String
  rentals: [Rental]
    @connect(source: "parking", http: { GET: "/spots/{$this.id}/rentals" }, selection: "id spot: { id: spot } hours")
}

type District @key(fields: "code")
  @connect(source: "parking", http: { GET: "/districts?codes={$batch.code->joinNotNull(',')}" }, selection: "$.items { code name }") {
  code: ID!
  name: String
}

type Rental {
  id: ID!
  spot: Spot
  hours: Int
}
'''
)


def parking(base_url: str) -> str:
    return PARKING.replace("BASE", base_url)
